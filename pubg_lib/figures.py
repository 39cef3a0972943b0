"""Redraw the compendium's figures from the stored tables, without training or generating (`make figures`).

Each figure a notebook draws from a table it stores under `data/results/` is listed in `REDRAWN` with the tables
it reads and the `pubg_lib.plots` (or study module) function that draws it: the same function the notebook calls
on the same table, so the redrawn figure is the notebook's. Figures of photos and answers (galleries) and figures
whose data is not stored as a table yet are listed in `NOT_REDRAWN` with the reason; `redraw` reports them instead
of leaving them silently stale.

    python -m pubg_lib.figures                       # PNG and PDF into figures/
    python -m pubg_lib.figures --formats png svg --out /tmp/figures
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from . import ablations, attacks, generalization, paths, plots
from .io import read_json


def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(paths.RESULTS / name)


def _json(name: str) -> dict:
    return read_json(paths.RESULTS / name)


def _runs07(group: str) -> pd.DataFrame:
    return ablations.group(_csv("07_runs.csv"), group)


def _re_elicitation(table: pd.DataFrame):
    return plots.re_elicitation(table, attacks.resurfacing(table))


def _trainable() -> dict[int, int]:
    return {int(k): v for k, v in _json("07_ablations.json")["lora_trainable_parameters"].items()}


# {figure name: (the stored files it reads, a function drawing it from them)}
REDRAWN: dict[str, tuple[list[str], Callable]] = {
    "05_main_metrics": (["05_main_table.csv"], lambda: plots.main_metrics(_csv("05_main_table.csv"))),
    "05_behaviour_classes": (
        ["05_behaviour_shares.csv"],
        lambda: plots.behaviour_classes(_csv("05_behaviour_shares.csv")),
    ),
    "06_seen_unseen": (["06_runs.csv"], lambda: generalization.seen_unseen_figure(_csv("06_runs.csv"))),
    "06_forget_size": (["06_runs.csv"], lambda: generalization.forget_size_figure(_csv("06_runs.csv"))),
    "06_paraphrases": (
        ["06_runs.csv", "06_generalization.json"],
        lambda: generalization.paraphrases_figure(_csv("06_runs.csv"), _json("06_generalization.json")["paraphrases"]),
    ),
    "07_components": (["07_runs.csv"], lambda: ablations.components_figure(_runs07("terms"))),
    "07_lambda_pareto": (["07_runs.csv"], lambda: ablations.lambda_figure(_runs07("lambda"))),
    "07_instructions": (["07_runs.csv"], lambda: ablations.reference_figure(_runs07("reference"))),
    "07_lora_rank": (
        ["07_runs.csv", "07_ablations.json"],
        lambda: ablations.rank_figure(_runs07("lora_rank"), _trainable()),
    ),
    "08_re_elicitation": (
        ["08_re_elicitation.csv"],
        lambda: _re_elicitation(_csv("08_re_elicitation.csv")),
    ),
}
# Figures only their notebook draws, and why.
NOT_REDRAWN = {
    "01_world_photos": "photos of the world (notebook 01 renders them)",
    "01_pretraining_curve": "the pretraining log is kept with the cached model, not stored as a result table",
    "01_recognition": "per-person recognition is not stored as a table yet",
    "02_reference_answers": "photos with the model's answers (a gallery)",
    "02_name_position": "per-position probabilities are not stored as a table yet",
    "03_forget_terms": "computed from the model's logits in notebook 03",
    "03_gradients": "computed from the model's logits in notebook 03",
    "03_ga_rollout": "a toy rollout computed in notebook 03",
    "03b_checkpoints": "the sweep's trials are not stored as a table yet",
    "03b_tradeoff": "the sweep's trials are not stored as a table yet",
    "03c_cost_of_forgetting": "the sweep's trials are not stored as a table yet",
    "03c_forgetting_speed": "the sweep's trials are not stored as a table yet",
    "04_behaviour_classes": "04's answers are not stored as a table yet",
    "04_dynamics": "the runs' loss dynamics are kept with the cached runs, not stored as a result table",
    "04_forget_behaviour": "04's answers are not stored as a table yet",
    "04_loss_terms": "the runs' loss dynamics are kept with the cached runs, not stored as a result table",
    "05_behaviour_gallery": "photos with the methods' answers (a gallery)",
    "05_failure_gallery_0": "photos with the methods' answers (a gallery)",
    "05_failure_gallery_1": "photos with the methods' answers (a gallery)",
}


def redraw(out: Path | None = None, formats=("png", "pdf")) -> dict[str, str]:
    """Redraw every figure of `REDRAWN` into `out` (default `figures/`) in each of `formats`; returns {figure:
    "redrawn" or why not}: a figure whose tables are missing (or predate the columns it needs) is reported, not
    drawn from something else."""
    report = {}
    for name, (files, draw) in REDRAWN.items():
        missing = [f for f in files if not (paths.RESULTS / f).exists()]
        if missing:
            report[name] = f"not redrawn: {missing} not stored (run its notebook)"
            continue
        try:
            fig = draw()
        except KeyError as e:  # a stored table from before the column the figure needs
            report[name] = f"not redrawn: the stored table lacks {e} (run its notebook)"
            continue
        plots.savefig(fig, name, out, formats=formats)
        report[name] = "redrawn"
    return report | {name: f"not redrawn: {why}" for name, why in NOT_REDRAWN.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="folder for the figures (default: figures/)")
    ap.add_argument("--formats", nargs="+", default=["png", "pdf"], choices=["png", "pdf", "svg"])
    args = ap.parse_args(argv)
    report = redraw(args.out, tuple(args.formats))
    for name, status in sorted(report.items()):
        print(f"{name}: {status}")
    print(json.dumps({"redrawn": sum(s == "redrawn" for s in report.values()), "figures": len(report)}))


if __name__ == "__main__":
    main()
