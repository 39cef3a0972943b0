"""The loss terms of PUBG and its baselines, as pure functions of logits and labels.

Conventions (those of Hugging Face causal LMs): `logits[:, t]` predicts `labels[:, t + 1]`; the label
`labels.IGNORE` (-100) marks a position that is not an answer token (prompt, image, padding). Every term averages
over answer tokens first (per sequence) and then over the batch, unless it says otherwise.

| term | formula | minimising it |
|---|---|---|
| `ga_loss` | E[ (1/|r|) Σ_t log p_θ(r_t | I, q, r_<t) ] | pushes the private answer's likelihood down (ascent) |
| `nll_loss` | −E[ (1/|y|) Σ_t log p_θ(y_t | ...) ] | fits y (retain answers, refusals, random answers) |
| `npo_loss` | −(2/β) E[ log σ(−β (log p_θ(r) − log p_ref(r))) ] | lowers p_θ(r) below the frozen model's; ≥ 0 |
| `forward_kl` | E[ (1/|o|) Σ_t KL(p_teacher(·|t) ‖ p_θ(·|t)) ] | moves the student to the teacher (BG, retain KL) |
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .labels import IGNORE


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are softmaxed in float32; float32/float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align predictions with targets: logits at t score the label at t + 1."""
    return logits[:, :-1, :], labels[:, 1:]


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(label_t) at every answer position (0 elsewhere) and the answer mask, both (B, T-1)."""
    logits, labels = shift(logits, labels)
    mask = labels != IGNORE
    safe = labels.masked_fill(~mask, 0)
    logp = torch.log_softmax(_upcast(logits), dim=-1)
    picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-sequence log-likelihood of the answer tokens: token mean ("mean") or sum ("sum"), shape (B,)."""
    picked, mask = token_logprobs(logits, labels)
    total = picked.sum(-1)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / mask.sum(-1).clamp(min=1)
    raise ValueError(f"unknown reduction {reduction!r}")


def ga_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_GA: the token-mean log-likelihood of the private answer, averaged over the batch (minimise it)."""
    return sequence_logprob(logits, labels).mean()


def nll_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood of the answer, averaged over the batch."""
    return -sequence_logprob(logits, labels).mean()


def npo_loss(logits: torch.Tensor, labels: torch.Tensor, ref_logprob: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Negative preference optimisation (Zhang et al., 2024) on the forget answers.

    `ref_logprob` holds log p_ref(r | x) summed over answer tokens (from the frozen original model), shape (B,).
    """
    if beta <= 0:
        raise ValueError(f"NPO beta must be positive, got {beta}")
    log_ratio = sequence_logprob(logits, labels, "sum") - ref_logprob
    return (-2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


def forward_kl(
    student_logits: torch.Tensor, labels: torch.Tensor, teacher_ids: torch.Tensor, teacher_logprobs: torch.Tensor
) -> torch.Tensor:
    """KL(p_teacher ‖ p_student) per answer position, token-averaged per sequence, then batch-averaged.

    The teacher is given on the shifted answer positions as its top-k token ids and their log-probabilities,
    shapes (B, T-1, k); with k equal to the vocabulary size it is exact. With k smaller, the teacher's remaining
    mass 1 − Σ_k p_T is matched against the student's remaining mass (a k+1-bucket KL, a lower bound of the full KL).
    Positions where `labels` (unshifted, as for the student) is IGNORE are ignored.
    """
    logits, shifted_labels = shift(student_logits, labels)
    mask = shifted_labels != IGNORE
    logq = torch.log_softmax(_upcast(logits), dim=-1)
    logq_k = logq.gather(-1, teacher_ids)
    p_k = teacher_logprobs.exp()
    kl = (p_k * (teacher_logprobs - logq_k)).sum(-1)
    rest_p = (1.0 - p_k.sum(-1)).clamp(min=0.0)
    if teacher_ids.shape[-1] < logits.shape[-1]:
        rest_q = (1.0 - logq_k.exp().sum(-1)).clamp(min=1e-12)
        kl = kl + torch.where(
            rest_p > 1e-9, rest_p * (torch.log(rest_p.clamp(min=1e-12)) - torch.log(rest_q)), torch.zeros_like(rest_p)
        )
    per_seq = (kl * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.mean()


def topk_teacher(teacher_logits: torch.Tensor, labels: torch.Tensor, k: int | None = None):
    """Compress a teacher's logits on answer positions into (ids, log-probs) of its top-k tokens, shifted like
    `forward_kl` expects. k=None keeps the full vocabulary (exact KL)."""
    logits, _ = shift(teacher_logits, labels)
    logp = torch.log_softmax(_upcast(logits), dim=-1)
    vocab = logp.shape[-1]
    if k is None or k >= vocab:
        ids = torch.arange(vocab, device=logp.device).expand_as(logp)
        return ids.contiguous(), logp
    vals, ids = logp.topk(k, dim=-1)
    return ids, vals
