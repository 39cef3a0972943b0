"""The prompted original model: reference answers and the teacher's cached token distributions.

PUBG's behaviour-guidance term distils p_θ*(o | I, q ⊕ c), the *original* model prompted in context with an
instruction c, into the model being unlearned, which sees only (I, q). Here we

1. generate the private answers r (the original model's own answers to q: what must be forgotten),
2. generate the reference answers o under q ⊕ c (greedy or sampled),
3. teacher-force the original model on each o under q ⊕ c once, and keep its token distributions along o (the full
   vocabulary, or the top-k plus the remaining mass for large vocabularies).

Step 3 happens once, before training, and is cached on disk (`torch.save` of plain tensors, read back with
`weights_only=True`); the training loop never runs the teacher. The same mechanism caches the original model's
distributions on retain answers (for a retain KL) and its log-likelihood of the private answers (for NPO).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from . import cache, prompts
from .config import ConfigError
from .entities import DataError
from .io import write_csv, write_json
from .labels import IGNORE
from .losses import sequence_logprob, topk_teacher
from .metrics.leakage import leaked_facts, names_person
from .models import collate, encode_example, generate, to_device
from .progress import tqdm
from .world import text as world_text


def generate_answers(
    lvlm,
    dataset,
    photo_ids: Sequence[str],
    query: str,
    *,
    instruction_name: str | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = prompts.MAX_ANSWER_TOKENS,
    progress: bool = True,
) -> pd.DataFrame:
    """The model's answers to `query` (with the in-context instruction prepended when `instruction_name` is given)."""
    photo_ids = list(photo_ids)
    text = prompts.instructed(query, instruction_name) if instruction_name else query
    answers = generate(
        lvlm,
        dataset.images(photo_ids),
        text,
        do_sample=do_sample,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        progress=progress,
        desc="reference answers" if instruction_name else "answers",
    )
    person_ids = [dataset.photo(p)["person_id"] for p in photo_ids]
    return pd.DataFrame({"photo_id": photo_ids, "person_id": person_ids, "query": text, "answer": answers})


@dataclasses.dataclass
class TeacherCache:
    """Per example: the teacher's top-k token ids and log-probs along the answer (n_answer_tokens, k), and the
    teacher's summed log-likelihood of the whole answer."""

    ids: list[torch.Tensor]
    logprobs: list[torch.Tensor]
    answer_logprob: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict:
        return {"ids": self.ids, "logprobs": self.logprobs, "answer_logprob": self.answer_logprob}


@torch.no_grad()
def teacher_distributions(
    lvlm,
    dataset,
    photo_ids: Sequence[str],
    teacher_queries: Sequence[str],
    answers: Sequence[str],
    topk: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> TeacherCache:
    """Teacher-force the (frozen) model on each answer under its teacher query and keep its distributions."""
    model = lvlm.model
    model.eval()
    ids, logps, totals = [], [], []
    rows = list(zip(photo_ids, teacher_queries, answers))
    for start in tqdm(range(0, len(rows), batch_size), desc="teacher distributions", disable=not progress, leave=False):
        exs = [encode_example(lvlm, dataset.image(p), q, a) for p, q, a in rows[start : start + batch_size]]
        batch = to_device(collate(exs, lvlm.tokenizer.pad_token_id, "right"), lvlm.device)
        labels = batch.pop("labels")
        logits = model(**batch).logits
        top_ids, top_logp = topk_teacher(logits, labels, topk)
        totals.append(sequence_logprob(logits.float(), labels, "sum").cpu())
        mask = labels[:, 1:] != IGNORE
        for i in range(len(exs)):
            ids.append(top_ids[i][mask[i]].cpu().to(torch.int32 if top_ids.shape[-1] > 1 else torch.int64))
            logps.append(top_logp[i][mask[i]].cpu().float())
    return TeacherCache(ids, logps, torch.cat(totals) if totals else torch.zeros(0))


@dataclasses.dataclass(frozen=True)
class NamePosition:
    """Where the first name comes in a photo's identity answer r ("this is <first> <last> , ..."): the original
    model's next-token log-probabilities along r, teacher-forced under the plain query q and under q ⊕ c."""

    photo_id: str
    position: int  # index of the first-name token among r's tokens
    name_id: int  # its token id
    plain: torch.Tensor  # (|r|, V) under q
    instructed: torch.Tensor  # (|r|, V) under q ⊕ c


def name_positions(lvlm, dataset, photo_ids: Sequence[str], instruction: str) -> list[NamePosition]:
    """The first-name position of each photo's identity answer under both prompts (notebooks 02 and 03); photos
    whose first name is not a single token of the vocabulary are left out."""
    photo_ids = list(photo_ids)
    answers = [dataset.identity_answer(p) for p in photo_ids]
    dists = {
        label: teacher_distributions(lvlm, dataset, photo_ids, [query] * len(photo_ids), answers, progress=False)
        for label, query in (
            ("plain", prompts.PAPER_QUERY),
            ("instructed", prompts.instructed(prompts.PAPER_QUERY, instruction)),
        )
    }
    tok = lvlm.tokenizer
    out = []
    for i, (photo_id, answer) in enumerate(zip(photo_ids, answers)):
        first = dataset.person(dataset.photo(photo_id)["person_id"])["first_name"]
        words = tok.convert_ids_to_tokens(tok(answer, add_special_tokens=False)["input_ids"])
        if first not in words:
            continue
        out.append(
            NamePosition(
                photo_id,
                words.index(first),
                tok.convert_tokens_to_ids(first),
                dists["plain"].logprobs[i],
                dists["instructed"].logprobs[i],
            )
        )
    return out


@dataclasses.dataclass
class UnlearningData:
    """What every unlearning method trains on, built once per (model, dataset, forget set, reference settings).

    `forget`: one row per seen photo of a forget person: `private_answer` (r, the original model's leaking answer),
    `reference_answer` (o, the prompted original's answer), `random_answer` (another person's private answer, for
    RANDOM), and the student query q. `retain`: one row per seen photo of a retain person with the original model's
    answer. Teacher caches are index-aligned with these tables.
    """

    forget: pd.DataFrame
    retain: pd.DataFrame
    bg_teacher: TeacherCache  # p_θ*(· | I, q ⊕ c) along o
    retain_teacher: TeacherCache  # p_θ*(· | I, q) along the retain answers
    forget_ref_logprob: torch.Tensor  # log p_θ*(r | I, q), summed over tokens (NPO's reference)
    settings: dict


def build_unlearning_data(
    lvlm,
    dataset,
    split,
    *,
    model_id: str,
    query: str = prompts.PAPER_QUERY,
    instruction_name: str = prompts.DEFAULT_INSTRUCTION,
    reference_sampling: bool = False,
    reference_temperature: float = 0.7,
    topk: int | None = None,
    seed: int = 0,
    use_cache: bool = True,
    progress: bool = True,
) -> UnlearningData:
    """Private, reference and random answers for the forget photos, retain answers, and the teacher caches.

    `model_id` names the original model in the cache key (its folder fingerprint or hub id). Cached under
    `paths.CACHE / "references"`; a second call with the same settings loads in well under a second.
    """
    prompts.instruction(instruction_name)  # unknown wordings fail here, before any work
    if topk is not None and (isinstance(topk, bool) or not isinstance(topk, int) or topk <= 0):
        raise ConfigError(f"topk must be a positive integer or None (the full vocabulary), got {topk!r}")
    split.check(dataset)
    settings = {
        "model": model_id,
        "data": dataset.fingerprint(),
        "forget": list(split.forget),
        "retain": list(split.retain),
        "query": query,
        "instruction": instruction_name,
        "sampling": reference_sampling,
        "temperature": reference_temperature if reference_sampling else None,
        "topk": topk,
        "seed": seed,
    }
    folder = cache.entry("references", settings, __name__)
    if use_cache and (folder / "tensors.pt").exists():
        tensors = torch.load(folder / "tensors.pt", weights_only=True)
        return UnlearningData(
            forget=pd.read_csv(folder / "forget.csv", keep_default_na=False),
            retain=pd.read_csv(folder / "retain.csv", keep_default_na=False),
            bg_teacher=TeacherCache(**tensors["bg"]),
            retain_teacher=TeacherCache(**tensors["retain"]),
            forget_ref_logprob=tensors["forget_ref_logprob"],
            settings=settings,
        )

    forget_ids = dataset.photos_of(split.forget, ["seen"])["photo_id"].tolist()
    retain_ids = dataset.photos_of(split.retain, ["seen"])["photo_id"].tolist()
    private = generate_answers(lvlm, dataset, forget_ids, query, progress=progress)
    reference = generate_answers(
        lvlm,
        dataset,
        forget_ids,
        query,
        instruction_name=instruction_name,
        do_sample=reference_sampling,
        temperature=reference_temperature,
        seed=seed,
        progress=progress,
    )
    forget = private.rename(columns={"answer": "private_answer"})
    forget["reference_answer"] = reference["answer"].to_numpy()
    forget["teacher_query"] = reference["query"].to_numpy()
    forget["private_leaks"] = [
        names_person(a, dataset.person(p)) for a, p in zip(forget["private_answer"], forget["person_id"])
    ]
    forget["random_answer"] = _random_answers(dataset, split, forget_ids, seed)
    retain = generate_answers(lvlm, dataset, retain_ids, query, progress=progress)

    bg = teacher_distributions(
        lvlm, dataset, forget_ids, forget["teacher_query"], forget["reference_answer"], topk, progress=progress
    )
    ret = teacher_distributions(lvlm, dataset, retain_ids, retain["query"], retain["answer"], topk, progress=progress)
    ref_lp = teacher_distributions(
        lvlm, dataset, forget_ids, forget["query"], forget["private_answer"], 1, progress=progress
    ).answer_logprob

    def write(tmp):
        write_csv(tmp / "forget.csv", forget)
        write_csv(tmp / "retain.csv", retain)
        write_json(tmp / "settings.json", settings)
        torch.save({"bg": bg.to_dict(), "retain": ret.to_dict(), "forget_ref_logprob": ref_lp}, tmp / "tensors.pt")

    cache.build(folder, write)
    return UnlearningData(forget, retain, bg, ret, ref_lp, settings)


def _random_answers(dataset, split, photo_ids, seed: int) -> list[str]:
    """RANDOM's targets: for each forget photo, the private answer of another person (a plausible wrong identity).

    Substitutes are drawn from people in neither set (people the model does not know) when there are any, so
    that RANDOM does not overwrite a retain person's identity; otherwise from the retain set. A substitute never
    shares a private fact (a name word, the profession, the birthplace) with the true person: otherwise tuning onto
    it would teach the model to keep saying part of what it must forget."""
    pool = sorted(set(dataset.people["person_id"]) - set(split.forget) - set(split.retain)) or list(split.retain)
    rng = np.random.default_rng(seed)
    out = []
    for photo_id in photo_ids:
        person = dataset.person(dataset.photo(photo_id)["person_id"])
        candidates = [dataset.person(o) for o in pool]
        candidates = [o for o in candidates if not leaked_facts(_facts_text(o), person)]
        if not candidates:
            raise DataError(
                f"no substitute for RANDOM shares no private fact with {person['person_id']}: every person "
                "outside the forget set has their name, profession or birthplace in common"
            )
        other = candidates[int(rng.integers(len(candidates)))]
        if dataset.has_attributes:
            out.append(world_text.identity_answer(other, dataset.attributes(photo_id)))
        else:
            out.append(_facts_text(other))
    return out


def _facts_text(person) -> str:
    return (
        world_text.private_facts(person)
        if "profession" in person and "birthplace" in person
        else f"this is {person['name']} ."
    )
