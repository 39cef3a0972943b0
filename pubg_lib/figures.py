"""Every figure of the compendium drawn from a stored table, and redrawn from it without training or generating
(`make figures`).

Two kinds, one rule (the notebook and `make figures` call the same function on the same table):
- a figure drawn from a result table a notebook stores anyway (`data/results/05_main_table.csv`, `06_runs.csv`,
  ...) is listed in `REDRAWN` with the tables it reads and the function that draws it;
- every other figure has a tidy table of its own, `data/figures/<figure>.csv`: the notebook calls
  `save(outputs, name, table)`, which stages the table, reads it back and draws it with `FROM_OWN_TABLE[name]`, so
  the notebook's figure is already the one drawn from the stored CSV. Galleries store each photo's id and caption
  and the world it comes from; the photos are rendered again from the world (no model runs).

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
from .config import default_configs
from .entities import EntityDataset
from .io import read_json
from .outputs import NotebookOutputs, figure_data_dir


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
    "09_text_only_metrics": (["09_text_only.csv"], lambda: plots.text_only(_csv("09_text_only.csv"))),
    "09_text_only_behaviour": (
        ["09_text_only_shares.csv"],
        lambda: plots.behaviour_classes(
            _csv("09_text_only_shares.csv"),
            "By name, without a photo",
            photos="held-out",
            labels=plots.TEXT_BEHAVIOUR_LABELS,
        ),
    ),
}


# The figures of the notebooks `make sweep` runs on request (hours on 2 cores): their tables come with that run.
ON_REQUEST = ("03b_", "03c_")


def _world_gallery(table: pd.DataFrame):
    """A gallery's photos rendered again from the world they come from (`world_seed`, `smoke_world` on every row)."""
    world_cfg, _ = default_configs(smoke=bool(table["smoke_world"].iloc[0]), seed=int(table["world_seed"].iloc[0]))
    return plots.gallery(table, EntityDataset.from_world(world_cfg).images(table["photo_id"]))


def _behaviour_classes_04(shares: pd.DataFrame):
    return plots.behaviour_classes(shares, "At the stored settings (seen and val photos)", photos="seen/val")


# {figure name: the function drawing it from its own table, data/figures/<name>.csv}
FROM_OWN_TABLE: dict[str, Callable[[pd.DataFrame], object]] = {
    "01_world_photos": _world_gallery,
    "01_pretraining_curve": plots.pretraining_curve,
    "01_recognition": plots.recognition,
    "02_reference_answers": _world_gallery,
    "02_name_position": plots.name_position,
    "03_gradients": plots.gradients_at_name,
    "03_ga_rollout": plots.ga_rollout,
    "03_forget_terms": plots.forget_terms,
    "03b_tradeoff": plots.sweep_tradeoff,
    "03b_checkpoints": plots.checkpoints,
    "03c_forgetting_speed": plots.sweep_speed,
    "03c_cost_of_forgetting": plots.cost_of_forgetting,
    "04_dynamics": plots.loss_dynamics,
    "04_loss_terms": plots.loss_terms,
    "04_forget_behaviour": plots.forget_behaviour,
    "04_behaviour_classes": _behaviour_classes_04,
    "05_behaviour_gallery": _world_gallery,
    "05_failure_gallery_0": _world_gallery,
    "05_failure_gallery_1": _world_gallery,
}


def gallery_table(photo_ids, captions, title: str, *, seed: int, smoke: bool) -> pd.DataFrame:
    """The table of a gallery: each photo's id and caption, the title, and the world the photos are rendered from."""
    return pd.DataFrame(
        {
            "photo_id": list(photo_ids),
            "caption": list(captions),
            "title": title,
            "world_seed": seed,
            "smoke_world": smoke,
        }
    )


def sweep_table(trials: pd.DataFrame, chosen: pd.DataFrame, *, min_usr: float, min_retain: float | None = None):
    """The table of a sweep figure (notebooks 03b, 03c): each trial's checkpoints (`kind` "trial") and each method's
    chosen one (`kind` "chosen", with whether it `reached` the target), at their val USR and relative retain
    recognition; the selection target on every row."""
    columns = ["method", "trial", "step", "usr", "retain_recognition_relative"]
    picked = chosen.assign(method=chosen.index).reset_index(drop=True)
    picked["reached"] = picked.get("reached", False)
    return pd.concat(
        [trials[columns].assign(kind="trial", reached=False), picked[[*columns, "reached"]].assign(kind="chosen")],
        ignore_index=True,
    ).assign(min_usr=min_usr, min_retain=min_retain)


def save(outputs: NotebookOutputs, name: str, table: pd.DataFrame) -> None:
    """Stage `table` as figure `name`'s own table (`data/figures/<name>.csv` once the notebook promotes) and draw the
    figure from the staged CSV as read back, with `FROM_OWN_TABLE[name]` (shown in the notebook, staged in its
    figures): what `make figures` draws from the committed table."""
    if name not in FROM_OWN_TABLE:
        raise KeyError(f"no drawing function for figure {name!r}: add it to figures.FROM_OWN_TABLE")
    stored = outputs.write_figure_data(name, table)
    plots.savefig(FROM_OWN_TABLE[name](pd.read_csv(stored)), name, outputs.figures_dir)


def redraw(out: Path | None = None, formats=("png", "pdf")) -> dict[str, str]:
    """Redraw every figure (`REDRAWN` and `FROM_OWN_TABLE`) into `out` (default `figures/`) in each of `formats`;
    returns {figure: "redrawn" or why not}: a figure whose table is missing (or predates the columns it needs) is
    reported, not drawn from something else."""
    report = {}
    own = figure_data_dir(smoke=False)
    for name, draw in FROM_OWN_TABLE.items():
        table = own / f"{name}.csv"
        if not table.exists():
            run = "make sweep" if name.startswith(ON_REQUEST) else "its notebook"
            report[name] = f"not redrawn: {table.relative_to(paths.ROOT)} not stored (run {run})"
            continue
        plots.savefig(draw(pd.read_csv(table)), name, out, formats=formats)
        report[name] = "redrawn"
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
    return report


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
