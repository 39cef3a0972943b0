"""One registry of unlearning methods: each is a small declarative entry saying which loss terms it uses.

| method | forget term (on forget photos) | + λ·BG | + γ·retain | known aftermath (paper) |
|---|---|---|---|---|
| GA | gradient ascent on the private answer r | no | no | degenerate |
| GD | gradient ascent on r | no | yes | degenerate / weak unlearning |
| NPO | negative preference optimisation on r | no | yes | hallucinated |
| RANDOM | NLL on another person's private answer | no | yes | hallucinated identity |
| REJECT | NLL on a refusal | no | yes | excessive refusal |
| BG | none | yes | yes | unreliable unlearning (ablation) |
| PUBG | gradient ascent on r | yes | yes | grounded, non-leaking description |

The total loss is forget term + λ·L_BG + γ·L_retain, the retain term being NLL on the original model's retain
answers or the KL from the original model (`UnlearnConfig.retain_loss`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str
    forget_term: str | None  # "ga", "npo", "random", "refusal" or None
    uses_bg: bool
    uses_retain: bool
    summary: str


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("GA", "ga", False, False, "gradient ascent on the private answer"),
    Method("GD", "ga", False, True, "gradient ascent + retain preservation (gradient difference)"),
    Method("NPO", "npo", False, True, "negative preference optimisation + retain preservation"),
    Method("RANDOM", "random", False, True, "tune onto another person's private answer + retain preservation"),
    Method("REJECT", "refusal", False, True, "tune onto a refusal + retain preservation"),
    Method("BG", None, True, True, "behaviour guidance only (KL to the prompted original) + retain preservation"),
    Method("PUBG", "ga", True, True, "gradient ascent + λ·behaviour guidance + γ·retain preservation"),
)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; choose one of {list(METHODS)}")
    return METHODS[name]
