"""Figures. Every figure is saved through `savefig` into the figures folder, named after its notebook."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import paths
from .evaluate import base_method
from .io import atomic_write_bytes
from .stats import pareto_front

sns.set_theme(context="notebook", style="whitegrid", font_scale=1.0)

# One colour per method in every figure (a variant such as "GA lr=0.003" or "PUBG scaled" takes its method's).
METHOD_COLORS = {
    "original": "#4d4d4d",
    "GA": "#d62728",
    "GD": "#ff7f0e",
    "NPO": "#9467bd",
    "RANDOM": "#8c564b",
    "REJECT": "#7f7f7f",
    "BG": "#17becf",
    "PUBG": "#2ca02c",
}
# One colour per behaviour class of an answer (`metrics.behaviour.BEHAVIOURS`).
BEHAVIOUR_COLORS = {
    "leak": "#d62728",
    "degenerate": "#7f7f7f",
    "refusal": "#9467bd",
    "hallucinated_identity": "#ff7f0e",
    "grounded_description": "#2ca02c",
    "other": "#bcbd22",
}


def method_color(name: str) -> str:
    """The colour of a method, or of a variant of one named "<METHOD> ..." (e.g. "GA lr=0.003")."""
    base = base_method(name)
    if base not in METHOD_COLORS:
        raise KeyError(f"no colour for {name!r}: add its method to plots.METHOD_COLORS")
    return METHOD_COLORS[base]


def method_palette(names) -> dict[str, str]:
    """{name: colour} for seaborn's `palette=` with `hue` a method column; a variant of a method is drawn darker
    than the method itself, so both can sit side by side."""
    out = {}
    for name in dict.fromkeys(names):
        color = method_color(name)
        if name not in METHOD_COLORS:  # a variant: darker
            r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
            color = "#{:02x}{:02x}{:02x}".format(*(int(c * 0.6) for c in (r, g, b)))
        out[name] = color
    return out


def savefig(fig, name: str, figures_dir: Path | str | None = None, dpi: int = 130) -> None:
    """Save `fig` as `<figures_dir>/<name>.png` (atomically) and show the same PNG where the reader is: in a
    notebook, as the cell's `image/png` output (the executed copy and its HTML show it, whatever the matplotlib
    backend); the figure is then closed so that it is not drawn twice."""
    folder = Path(figures_dir) if figures_dir is not None else paths.FIGURES
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(folder / f"{name}.png", buf.getvalue())
    _show_png(buf.getvalue())
    plt.close(fig)


def _show_png(png: bytes) -> None:
    """Display a PNG in the running IPython kernel, if there is one (a plain script shows nothing)."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(data=png, format="png"))


def label_bars(ax, fmt: str = "{:.2f}") -> None:
    """Write each bar's value on it: inside a tall bar (clear of its error bar's cap), just above a short one, so a
    bar at zero or at the scale's floor still says what it is."""
    top = ax.get_ylim()[1]
    for bar in ax.patches:
        height = bar.get_height()
        if bar.get_width() == 0 or np.isnan(height):
            continue
        tall = height > 0.15 * top
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            height / 2 if tall else height + 0.02 * top,
            fmt.format(height),
            ha="center",
            va="center" if tall else "bottom",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )


def wrap(text: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(text, width)) or "(empty)"


def photo_grid(images, captions, ncols: int = 6, width: int = 30, title: str | None = None):
    """Photos with wrapped captions underneath (attributes, answers)."""
    n = len(images)
    nrows = max(1, (n + ncols - 1) // ncols)  # (no photos: an empty panel under the title)
    lines = max((wrap(c, width).count("\n") + 1 for c in captions), default=1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, (2.7 + 0.2 * lines) * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, captions):
        ax.axis("on")
        ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel(wrap(cap, width), fontsize=7.5, loc="left", va="top")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def training_curve(
    log: pd.DataFrame, x: str = "step", y: str = "loss", title: str = "", ylabel: str = "loss", smooth: int = 10
):
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(log[x], log[y], alpha=0.3, color="tab:blue", label="per step")
    ax.plot(log[x], log[y].rolling(smooth, min_periods=1).mean(), color="tab:blue", label=f"mean of {smooth} steps")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


ROLE_ORDER = {"known": 0, "anonymous": 1, "never_seen": 2}


def recognition_bars(per_person: pd.DataFrame, threshold: float):
    """Per-person recognition share on seen and unseen photos, grouped by role; the filter's threshold as a line."""
    data = per_person.assign(_r=per_person["role"].map(ROLE_ORDER)).sort_values(
        ["_r", "unseen"], ascending=[True, False]
    )
    long = data.melt(
        id_vars=["person_id", "role"],
        value_vars=["seen", "unseen"],
        var_name="photos",
        value_name="share named correctly",
    )
    fig, ax = plt.subplots(figsize=(max(8, 0.2 * len(data)), 3.8))
    sns.barplot(long, x="person_id", y="share named correctly", hue="photos", ax=ax, order=data["person_id"])
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"filter threshold {threshold:.2f}")
    start = 0
    for role, n in data["role"].value_counts(sort=False).reindex(data["role"].unique()).items():
        if start:
            ax.axvline(start - 0.5, color="tab:red", lw=1)
        ax.text(start + n / 2 - 0.5, 1.07, role.replace("_", " "), ha="center", color="tab:red", fontsize=9)
        start += n
    ax.set_xlabel("person (grouped by role in pretraining)")
    ax.set_ylabel("share of photos named correctly")
    ax.set_ylim(0, 1.12)
    ax.tick_params(axis="x", rotation=90, labelsize=7)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    return fig


def tradeoff(
    summary: pd.DataFrame,
    x: str,
    y: str,
    label: str,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    ax=None,
    front: bool = True,
):
    """Each setting as a point at the mean of `x` and `y` over seeds, with ± 1 s.d. error bars (columns `<x>_mean`,
    `<x>_sd`, ... as `experiments.summarise` writes them), annotated with `label`; with `front`, the points no other
    point beats on both axes (both to be maximised) are joined as the Pareto front."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.6))
    xm, ym = summary[f"{x}_mean"].to_numpy(), summary[f"{y}_mean"].to_numpy()
    ax.errorbar(
        xm,
        ym,
        xerr=summary[f"{x}_sd"].fillna(0),
        yerr=summary[f"{y}_sd"].fillna(0),
        fmt="o",
        color="tab:blue",
        ecolor="tab:gray",
        capsize=3,
        label="mean ± 1 s.d. over seeds",
    )
    for xi, yi, name in zip(xm, ym, summary[label]):
        ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(6, 6), fontsize=9)
    if front:
        mask = pareto_front(xm, ym)
        order = np.argsort(xm[mask])
        ax.plot(xm[mask][order], ym[mask][order], "--", color="tab:red", lw=1.5, label="Pareto front (means)")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8, loc="lower left")
    return ax


def interval_bars(table: pd.DataFrame, metrics: dict[str, str], *, ncols: int = 3, n_label: str = "n"):
    """One panel per metric (`{column: panel title}`) with one bar per method (`table`'s `method` column, in its
    order) at the mean and an error bar from `<column>_ci_low` to `<column>_ci_high` (as `comparison.main_table`
    writes them); each bar in its method's colour. `n_label` says over what the intervals run."""
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), squeeze=False)
    names = table["method"].tolist()
    colors = [method_palette(names)[m] for m in names]
    for ax, (column, title) in zip(axes.flat, metrics.items()):
        mean = table[column].to_numpy(dtype=float)
        low, high = table[f"{column}_ci_low"].to_numpy(dtype=float), table[f"{column}_ci_high"].to_numpy(dtype=float)
        err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        # an undefined mean (e.g. TF-IDF of a run whose every answer is degenerate) stays undrawn, not a zero bar
        ax.bar(names, mean, yerr=err, color=colors, capsize=3, ecolor="k")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("mean (95% CI)")
        ax.tick_params(axis="x", rotation=35, labelsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.text(0.99, 0.005, f"intervals: 95% bootstrap, {n_label}", ha="right", fontsize=8)
    fig.tight_layout()
    return fig
