"""What each loss term does to one next-token distribution (notebook 03).

At one answer position with student distribution p (softmax of the logits z) and label y:

- GA minimises log p(y): its descent direction on the logits is −∂ log p(y)/∂z = p − 1_y. The label's logit goes
  down by 1 − p(y); every other logit goes *up* in proportion to p, so the mass taken from y flows to the tokens
  that are already likely.
- The behaviour-guidance KL(p_T ‖ p) has descent direction p_T − p: the student moves towards the teacher p_T.

Both are per position; the losses average them over the |r| (or |o|) answer positions, which scales the gradient by
1/|r| (`pubg_lib.losses`; notebook 03 checks these formulas against autograd of the library's losses).
`ga_rollout` repeats the GA step on one position: the toy version of GA's collapse.
"""

from __future__ import annotations

import numpy as np


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def descent_directions(p_student: np.ndarray, p_teacher: np.ndarray, label: int) -> dict[str, np.ndarray]:
    """The descent directions on the logits at one position: `ga` (p − 1_y) and `bg` (p_T − p)."""
    p_student, p_teacher = np.asarray(p_student, float), np.asarray(p_teacher, float)
    one_hot = np.zeros_like(p_student)
    one_hot[label] = 1.0
    return {"ga": p_student - one_hot, "bg": p_teacher - p_student}


def ga_rollout(logits: np.ndarray, label: int, learning_rate: float, steps: int) -> np.ndarray:
    """Plain gradient descent on log p(label) over the logits of one position: the distribution after each of
    `steps` steps (row 0: before any), shape (steps + 1, V)."""
    z = np.asarray(logits, float).copy()
    out = [_softmax(z)]
    for _ in range(steps):
        p = out[-1]
        z += learning_rate * descent_directions(p, p, label)["ga"]  # (GA's direction does not use a teacher)
        out.append(_softmax(z))
    return np.stack(out)


def tokens_to_show(p_student: np.ndarray, p_teacher: np.ndarray, label: int, k: int = 5) -> list[int]:
    """The label and the k most likely tokens under each distribution (no repeats), most likely first."""
    order = list(np.argsort(-np.asarray(p_student))[:k]) + list(np.argsort(-np.asarray(p_teacher))[:k])
    return list(dict.fromkeys([int(label), *map(int, order)]))


def runner_up_mass(rollout: np.ndarray, label: int, k: int = 3) -> tuple[float, float]:
    """The probability held, before and after a rollout, by the k tokens other than `label` that were most likely
    before it started (GA's rich-get-richer: they end up with nearly everything)."""
    before = rollout[0]
    top = [i for i in np.argsort(-before) if i != label][:k]
    return float(before[top].sum()), float(rollout[-1][top].sum())


def first_step_below(probabilities: np.ndarray, level: float) -> int | None:
    """The first step at which a probability is below `level` (None if it never is)."""
    below = np.flatnonzero(np.asarray(probabilities) < level)
    return int(below[0]) if len(below) else None
