"""One registry of unlearning methods. An entry says everything the loop needs: which answer its forget term
trains on, the loss of that term, and whether it adds behaviour guidance (λ) and the retain term (γ).

| method | forget term (on forget photos) | target | + λ·BG | + γ·retain | known aftermath (paper) |
|---|---|---|---|---|---|
| GA | gradient ascent on the private answer r | private | no | no | degenerate |
| GD | gradient ascent on r | private | no | yes | degenerate / weak unlearning |
| NPO | negative preference optimisation on r | private | no | yes | hallucinated |
| RANDOM | NLL on another person's private answer | random | no | yes | hallucinated identity |
| REJECT | NLL on a refusal | refusal | no | yes | excessive refusal |
| BG | none | – | yes | yes | unreliable unlearning (ablation) |
| PUBG | gradient ascent on r | private | yes | yes | grounded, non-leaking description |

The total loss is forget term + λ·L_BG + γ·L_retain, the retain term being NLL on the original model's retain
answers or the KL from the original model (`UnlearnConfig.retain_loss`). Adding a method is one `register` call
with its loss beside it (open-unlearning's `grad_ascent.py` in spirit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import losses, prompts

# What a forget term trains on, read from one row of the unlearning data's forget table.
TARGETS: dict[str, Callable[[dict], str]] = {
    "private": lambda row: row["private_answer"],  # r: what the original model said (must be forgotten)
    "random": lambda row: row["random_answer"],  # another person's private answer (no fact shared)
    "refusal": lambda row: prompts.REFUSAL,
}


@dataclass(frozen=True)
class ForgetContext:
    """What a forget loss may need besides logits and labels: the original model's log-likelihood of each private
    answer (summed over tokens; NPO's reference) and the run's settings."""

    ref_logprob: torch.Tensor
    config: object  # the UnlearnConfig of the run


ForgetLoss = Callable[[torch.Tensor, torch.Tensor, ForgetContext], torch.Tensor]


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    term: str | None  # the name the forget term is logged under (None: no forget term)
    target: str | None  # key of TARGETS
    loss: ForgetLoss | None
    uses_bg: bool
    uses_retain: bool

    def __post_init__(self):
        if (self.term is None) != (self.loss is None) or (self.loss is None) != (self.target is None):
            raise ValueError(f"{self.name}: term, target and loss go together")
        if self.target is not None and self.target not in TARGETS:
            raise ValueError(f"{self.name}: unknown target {self.target!r}; known: {sorted(TARGETS)}")


def gradient_ascent(logits, labels, ctx: ForgetContext):
    """L_GA: minimising the private answer's token-mean log-likelihood pushes it down."""
    return losses.ga_loss(logits, labels)


def negative_preference(logits, labels, ctx: ForgetContext):
    """NPO: lowers the private answer relative to the original model, bounded below (β from the config)."""
    return losses.npo_loss(logits, labels, ctx.ref_logprob.to(logits.device), ctx.config.npo_beta)


def fit_target(logits, labels, ctx: ForgetContext):
    """NLL: tunes onto the method's target (a substitute identity, a refusal)."""
    return losses.nll_loss(logits, labels)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


register(Method("GA", "gradient ascent on the private answer", "ga", "private", gradient_ascent, False, False))
register(
    Method(
        "GD",
        "gradient ascent + retain preservation (gradient difference)",
        "ga",
        "private",
        gradient_ascent,
        False,
        True,
    )
)
register(
    Method(
        "NPO",
        "negative preference optimisation + retain preservation",
        "npo",
        "private",
        negative_preference,
        False,
        True,
    )
)
register(
    Method(
        "RANDOM",
        "tune onto another person's private answer + retain preservation",
        "nll_random",
        "random",
        fit_target,
        False,
        True,
    )
)
register(
    Method("REJECT", "tune onto a refusal + retain preservation", "nll_refusal", "refusal", fit_target, False, True)
)
register(
    Method(
        "BG",
        "behaviour guidance only (KL to the prompted original) + retain preservation",
        None,
        None,
        None,
        True,
        True,
    )
)
register(
    Method(
        "PUBG",
        "gradient ascent + λ·behaviour guidance + γ·retain preservation",
        "ga",
        "private",
        gradient_ascent,
        True,
        True,
    )
)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; choose one of {list(METHODS)}")
    return METHODS[name]


TARGET_MEANING = {
    "private": "r, the original model's private answer",
    "random": "another person's private answer (no fact shared)",
    "refusal": "the refusal",
}


def table() -> list[dict]:
    """The registry as rows (one per method): what each method trains on. Notebook 03 shows it."""
    return [
        {
            "method": m.name,
            "what it does": m.summary,
            "forget term": m.term or "–",
            "on": TARGET_MEANING[m.target] if m.target else "–",
            "guidance (λ)": "yes" if m.uses_bg else "no",
            "retain (γ)": "yes" if m.uses_retain else "no",
        }
        for m in METHODS.values()
    ]
