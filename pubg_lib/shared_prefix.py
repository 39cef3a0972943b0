"""One prefix, two continuations: the forget half of a PUBG step with each photo and prompt computed once.

A PUBG step asks two things of every forget photo: the student's log-probabilities along the private answer r (the
GA term) and along the reference answer o (the guidance KL), under the same image and query. As two separate
sequences (`unlearn.UnlearningLoop.loss_terms` today), the prefix — the image tokens and the prompt — runs twice,
vision tower included: in LLaVA-NeXT that is ~2,900 image tokens against ~50 answer tokens per sequence.

`continuation_logits` runs the prefixes once with `use_cache=True`; the key/value cache (which carries gradients)
is repeated for the continuations, which run as one batch on top of it. Prefixes are left-padded and every token
gets its position id explicitly (its index among the real tokens), so each token sees exactly what it sees in the
unshared right-padded batch, and the answer logits — hence every loss term and its gradients — equal the unshared
computation's up to float rounding (`tests/test_shared_prefix.py`, on LLaVA and LLaVA-NeXT).

The result is laid out as the loss functions expect (`losses`: logits at t score the label at t + 1): per
continuation, logits (B, T + 1, V) and labels (B, T + 1) with the label IGNORE at 0 and the answer after it, so the
same `losses.ga_loss`, `forward_kl`, ... apply, and `unlearn._teacher_batch` finds the answer positions in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .labels import IGNORE


def _prefix_batch(prompts: Sequence[dict], pad_id: int) -> dict:
    """Left-padded prompt ids with their mask, position ids and images (`models.encode_example` without an answer)."""
    width = max(len(p["input_ids"]) for p in prompts)
    ids, mask = [], []
    for p in prompts:
        n = width - len(p["input_ids"])
        ids.append([pad_id] * n + list(p["input_ids"]))
        mask.append([0] * n + [1] * len(p["input_ids"]))
    batch = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
    batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    for key in dict.fromkeys(k for p in prompts for k in p if k not in ("input_ids", "labels", "attention_mask")):
        batch[key] = torch.cat([p[key] for p in prompts if key in p], dim=0)
    return batch


def continuation_logits(
    model, prompts: Sequence[dict], continuations: Sequence[Sequence[Sequence[int]]], pad_id: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The logits along each continuation of each prompt, the prompts computed once.

    `prompts`: B encoded prompts (`models.encode_example(lvlm, image, query)`); `continuations`: K lists of B answer
    token-id lists (answer tokens and the end token, as `encode_example` appends them). Returns, per continuation
    list, (logits (B, T + 1, V), labels (B, T + 1)) in the losses' layout (module docstring), T the longest answer.
    """
    B, K = len(prompts), len(continuations)
    if any(len(c) != B for c in continuations):
        raise ValueError(f"every continuation list needs one answer per prompt ({B})")
    device = next(model.parameters()).device
    prefix = {k: v.to(device) for k, v in _prefix_batch(prompts, pad_id).items()}
    out = model(**prefix, use_cache=True, logits_to_keep=1)
    first = out.logits[:, -1]  # (B, V): scores each answer's first token
    cache = out.cache
    cache.batch_repeat_interleave(K)  # row b * K + k continues prompt b with continuation k
    answers = [continuations[k][b] for b in range(B) for k in range(K)]
    width = max(len(a) for a in answers)
    ids = torch.full((B * K, max(width - 1, 1)), pad_id)
    mask = torch.zeros_like(ids)
    for row, answer in enumerate(answers):  # the last token is only ever a target: it is not fed
        ids[row, : len(answer) - 1] = torch.tensor(answer[:-1], dtype=ids.dtype)
        mask[row, : len(answer) - 1] = 1
    prefix_mask = prefix["attention_mask"].repeat_interleave(K, dim=0)
    start = prefix_mask.sum(-1, keepdim=True)  # each row's number of real prefix tokens
    rest = model(
        input_ids=ids.to(device),
        attention_mask=torch.cat([prefix_mask, mask.to(device)], dim=-1),
        position_ids=start + torch.arange(ids.shape[1], device=device),
        cache=cache,
        use_cache=True,
    ).logits
    results = []
    for k in range(K):
        rows = torch.arange(B, device=device) * K + k
        logits = torch.cat([first.unsqueeze(1), rest[rows], torch.zeros_like(first).unsqueeze(1)], dim=1)
        labels = torch.full((B, logits.shape[1]), IGNORE, device=device)
        for b in range(B):
            answer = continuations[k][b]
            labels[b, 1 : 1 + len(answer)] = torch.tensor(answer, device=device)
        results.append((logits[:, : width + 1], labels[:, : width + 1]))
    return results


def split_example(example: dict) -> tuple[dict, list[int]]:
    """An encoded example (`models.encode_example` with an answer) as its prompt, ready for `continuation_logits`,
    and its answer ids (the tokens whose label is not IGNORE: the answer and its end token)."""
    ids, labels = list(example["input_ids"]), list(example["labels"])
    start = next((i for i, label in enumerate(labels) if label != IGNORE), len(ids))
    if any(label == IGNORE for label in labels[start:]):
        raise ValueError("the example's answer is not one run of tokens at its end")
    prompt = {k: v for k, v in example.items() if k not in ("input_ids", "labels")}
    prompt.update(input_ids=ids[:start], labels=[IGNORE] * start)
    return prompt, ids[start:]
