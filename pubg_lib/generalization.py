"""Notebook 06's generalisation study: unseen photos, larger forget sets, other seeds, other wordings.

Every method runs on forget sets of several sizes and seeds (one `experiments.Condition` each); PUBG may also run
with its steps proportional to the size of the forget set. The runs table (notebook 06 stores it as
`data/results/06_runs.csv`: one row per run, plus the original model's scores on the same forget sets under the
label "original") is all the figures read, so the same functions redraw them from the stored table.
"""

from __future__ import annotations

from dataclasses import replace

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from . import plots
from .experiments import Experiment, conditions
from .unlearn import UnlearnConfig

SCALED = "PUBG, steps ∝ size"
# The per-run scores summarised over seeds.
METRICS = [
    "usr_seen",
    "usr_unseen",
    "usr_paraphrases",
    "judge_inform_unseen",
    "judge_hall_unseen",
    "clip_score_unseen",
    "degenerate_rate_unseen",
    "hallucinated_identity_rate_unseen",
    "retain_recognition_relative",
]
# (column, panel title, y range) of the forget-size figure.
SIZE_PANELS = {
    "judge_inform_unseen": ("JUDGE inform, unseen (1–5) ↑", (0, 5.2)),
    "clip_score_unseen": ("CLIP score, unseen ↑", (0, 1)),
    "degenerate_rate_unseen": ("degenerate share, unseen ↓", (-0.02, 1)),
    "hallucinated_identity_rate_unseen": ("hallucinated identity, unseen ↓", (-0.02, 1)),
    "retain_recognition_relative": ("retain recognition / original ↑", (0, 1.1)),
}


def generalisation_conditions(settings: dict[str, UnlearnConfig], methods, seeds, sizes, scaled_sizes=()) -> list:
    """Every method × forget-set size × seed; with two or more `scaled_sizes`, PUBG also runs at each of them
    with its steps multiplied by the size over the smallest one (label `SCALED`)."""
    todo = conditions("generalisation", {m: settings[m] for m in methods}, seeds, sizes)
    if len(scaled_sizes) > 1:
        base = min(scaled_sizes)
        for n in scaled_sizes:
            scaled = replace(settings["PUBG"], steps=settings["PUBG"].steps * n // base)
            todo += conditions("generalisation", {SCALED: scaled}, seeds, [n])
    return todo


def runs_table(experiment: Experiment, todo, sizes, seeds) -> pd.DataFrame:
    """The runs of `todo`, after the original model's scores on the same forget sets (label "original")."""
    runs = experiment.run(todo, desc="unlearning runs")
    original = [
        {"group": "generalisation", "label": "original", "method": "original", "n_forget": n, "seed": s}
        | experiment.original(n, s)
        for n in sizes
        for s in seeds
    ]
    return pd.concat([pd.DataFrame(original), runs], ignore_index=True)


def variants(frame: pd.DataFrame) -> list[str]:
    """The labels of the runs, in order, without the original."""
    return [v for v in dict.fromkeys(frame["label"]) if v != "original"]


def _seeds(frame: pd.DataFrame) -> int:
    return frame["seed"].nunique()


def seen_unseen_figure(frame: pd.DataFrame):
    """USR on seen (trained on) and unseen photos against the forget-set size, one panel per method and the
    original; the title says how far forgetting carries from seen to unseen photos."""
    long = frame.melt(
        id_vars=["label", "n_forget", "seed"],
        value_vars=["usr_seen", "usr_unseen"],
        var_name="photos",
        value_name="usr",
    )
    long["photos"] = long["photos"].map({"usr_seen": "seen (trained on)", "usr_unseen": "unseen (test)"})
    grid = sns.catplot(
        long,
        x="n_forget",
        y="usr",
        hue="photos",
        col="label",
        kind="point",
        errorbar="sd",
        capsize=0.1,
        dodge=0.25,
        height=3.6,
        aspect=1.0,
        col_order=["original", *variants(frame)],
    )
    grid.set_axis_labels("forget-set size (people)", "USR (share not leaking) ↑")
    grid.set_titles("{col_name}")
    grid.set(ylim=(-0.03, 1.03))
    carry = long[long["label"] != "original"].groupby(["label", "photos"])["usr"].mean().unstack()
    grid.figure.suptitle(
        plots.wrap(
            "Does forgetting on the trained photos carry to unseen ones? USR seen → unseen, mean over sizes and "
            f"{_seeds(frame)} seeds: "
            + ", ".join(f"{label} {row.iloc[0]:.2f} → {row.iloc[1]:.2f}" for label, row in carry.iterrows()),
            150,
        ),
        y=1.0,
        va="bottom",
    )
    return grid.figure


def forget_size_figure(frame: pd.DataFrame):
    """The other scores of the runs (`SIZE_PANELS`) against the forget-set size, one colour per method; the title
    says how USR on unseen photos moves from the smallest forget set to the largest."""
    runs = frame[frame["label"] != "original"]
    fig, axes = plt.subplots(1, len(SIZE_PANELS), figsize=(3.9 * len(SIZE_PANELS), 4.0), layout="constrained")
    for ax, (col, (name, ylim)) in zip(axes, SIZE_PANELS.items()):
        sns.pointplot(
            runs,
            x="n_forget",
            y=col,
            hue="label",
            palette=plots.method_palette(runs["label"]),
            errorbar="sd",
            capsize=0.1,
            dodge=0.3,
            ax=ax,
            legend=ax is axes[-1],
        )
        ax.set(xlabel="forget-set size (people)", ylabel="", title=name, ylim=ylim)
    axes[-1].legend(title="", fontsize=8, loc="lower left")
    by_size = runs.groupby(["label", "n_forget"])["usr_unseen"].mean()
    smallest, largest = runs["n_forget"].min(), runs["n_forget"].max()
    change = [
        f"{label} {by_size[(label, smallest)]:.2f} → {by_size[(label, largest)]:.2f}"
        for label in variants(frame)
        if (label, smallest) in by_size and (label, largest) in by_size
    ]
    fig.suptitle(
        plots.wrap(
            f"From {smallest} to {largest} forget people, USR on unseen photos (mean ± 1 s.d. over {_seeds(frame)} "
            f"seeds): {', '.join(change)}",
            150,
        )
    )
    return fig


def paraphrases_figure(frame: pd.DataFrame, paraphrases):
    """USR on unseen photos under the paper's query and each paraphrase (`usr_paraphrase_<i>`), one panel per
    forget-set size; the title gives each method's drop from the paper's query to its most revealing wording."""
    names = {"usr_unseen": "paper query", **{f"usr_paraphrase_{i}": q for i, q in enumerate(paraphrases)}}
    para = frame.melt(id_vars=["label", "n_forget", "seed"], value_vars=list(names), var_name="query", value_name="usr")
    para["query"] = para["query"].map(names)
    sizes = sorted(para["n_forget"].unique())
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(4.8 * len(sizes), 4.2), sharey=True, squeeze=False, layout="constrained"
    )
    for ax, n in zip(axes[0], sizes):
        sns.barplot(
            para[para["n_forget"] == n],
            x="label",
            y="usr",
            hue="query",
            errorbar="sd",
            capsize=0.1,
            ax=ax,
            order=["original", *variants(frame)],
            legend=ax is axes[0][-1],
        )
        ax.set(title=f"{n} forget people", xlabel="", ylabel="USR on unseen photos ↑", ylim=(0, 1.05))
        ax.tick_params(axis="x", rotation=20, labelsize=8)
    axes[0][-1].legend(title="query", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    by_query = para[para["label"] != "original"].groupby(["label", "query"])["usr"].mean().unstack()
    weakest = by_query.drop(columns="paper query").min(axis=1)
    fig.suptitle(
        plots.wrap(
            f"Other wordings of the question, USR on unseen photos ({_seeds(frame)} seeds), paper query → the most "
            "revealing wording: "
            + ", ".join(
                f"{label} {by_query.loc[label, 'paper query']:.2f} → {weakest[label]:.2f}" for label in weakest.index
            ),
            130,
        )
    )
    return fig


def seen_minus_unseen(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per method, the mean and s.d. over runs of USR on seen photos minus USR on unseen ones."""
    runs = frame[frame["label"] != "original"]
    gap = (runs["usr_seen"] - runs["usr_unseen"]).groupby(runs["label"])
    return {m: {"mean": float(g.mean()), "sd": float(g.std())} for m, g in gap}
