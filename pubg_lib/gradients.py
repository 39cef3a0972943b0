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
import pandas as pd


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


# ---- the tidy tables of notebook 03's figures (drawn by `plots.gradients_at_name`, `ga_rollout`, `forget_terms`) ----


def gradient_table(p_student: np.ndarray, p_teacher: np.ndarray, label: int, token_names) -> pd.DataFrame:
    """At one position, for the label and the tokens most likely under either distribution (`tokens_to_show`, the
    label first): both probabilities and both descent directions on the token's logit. `token_names` maps a list
    of token ids to their strings (a tokenizer's `convert_ids_to_tokens`)."""
    shown = tokens_to_show(p_student, p_teacher, label)
    push = descent_directions(p_student, p_teacher, label)
    return pd.DataFrame(
        {
            "token": token_names(shown),
            "p_student": np.asarray(p_student, float)[shown],
            "p_teacher": np.asarray(p_teacher, float)[shown],
            "ga": push["ga"][shown],
            "bg": push["bg"][shown],
            "is_name": [i == label for i in shown],
        }
    )


def rollout_table(rollout: np.ndarray, label: int, token_names, learning_rate: float, k: int = 3) -> pd.DataFrame:
    """`ga_rollout` as a long table (`step`, `line`, `token`, `probability`; the `learning_rate` on every row): the
    label ("name"), the k tokens other than it that were likeliest before the rollout ("runner-up 1..k", likeliest
    first) and the rest together ("others")."""
    runners_up = [int(i) for i in np.argsort(-rollout[0]) if i != label][:k]
    lines = {"name": (token_names([label])[0], rollout[:, label])}
    for n, (token, i) in enumerate(zip(token_names(runners_up), runners_up), 1):
        lines[f"runner-up {n}"] = (token, rollout[:, i])
    others = 1 - rollout[:, [label, *runners_up]].sum(1)
    lines["others"] = (f"the other {rollout.shape[1] - k - 1} tokens", others)
    steps = np.arange(len(rollout))
    return pd.concat(
        [
            pd.DataFrame({"step": steps, "line": line, "token": token, "probability": p})
            for line, (token, p) in lines.items()
        ],
        ignore_index=True,
    ).assign(learning_rate=learning_rate)


def forget_term_curves(log_ratio: np.ndarray, betas=(0.1, 0.5, 1.0)) -> pd.DataFrame:
    """GA's and NPO's forget terms as functions of the log-ratio log p_θ(r) − log p_θ*(r) (`log_ratio`, `term`,
    `loss`): GA's is the log-ratio itself (up to a constant, unbounded), NPO's is −(2/β) log σ(−β · log-ratio)."""
    log_ratio = np.asarray(log_ratio, float)
    curves = {"GA (∝ log p_θ(r)), unbounded": log_ratio}
    curves |= {f"NPO, β={b}": -2 / b * np.log(1 / (1 + np.exp(b * log_ratio))) for b in betas}
    return pd.concat(
        [pd.DataFrame({"log_ratio": log_ratio, "term": term, "loss": loss}) for term, loss in curves.items()],
        ignore_index=True,
    )
