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
    "description": "#aec7e8",  # a description with nothing to ground it (text only: no photo)
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


FIGURE_FORMATS = ("png", "pdf", "svg")


def savefig(fig, name: str, figures_dir: Path | str | None = None, dpi: int = 130, formats=("png",)) -> None:
    """Save `fig` as `<figures_dir>/<name>.<format>` for each of `formats` (PNG, PDF, SVG; atomically, without a
    creation date, so the same figure gives the same bytes) and show the PNG where the reader is: in a notebook,
    as the cell's `image/png` output (the executed copy and its HTML show it, whatever the matplotlib backend); the
    figure is then closed so that it is not drawn twice."""
    if Path(name).suffix.lstrip(".") in FIGURE_FORMATS:
        raise ValueError(f"figure name {name!r}: give it without an extension and choose formats=(...)")
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise ValueError(f"unknown figure formats {unknown}; choose from {FIGURE_FORMATS}")
    folder = Path(figures_dir) if figures_dir is not None else paths.FIGURES
    rendered = {}
    for fmt in dict.fromkeys(("png", *formats)):
        buf = io.BytesIO()
        metadata = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]
        with plt.rc_context({"svg.hashsalt": name}):  # SVG element ids from the name, not at random
            fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
        rendered[fmt] = buf.getvalue()
    for fmt in formats:
        atomic_write_bytes(folder / f"{name}.{fmt}", rendered[fmt])
    _show_png(rendered["png"])
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
        ax.scatter(names, mean, color=colors, s=14, zorder=3, edgecolors="k", linewidths=0.5)  # a zero stays visible
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("mean (95% CI)")
        ax.tick_params(axis="x", rotation=35, labelsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.text(0.99, 0.005, f"intervals: 95% bootstrap, {n_label}", ha="right", fontsize=8)
    fig.tight_layout()
    return fig


# The main table's panels (notebook 05): {column: panel title}.
MAIN_METRICS = {
    "usr": "USR (no private fact) ↑",
    "usr_name_only": "USR, name only ↑",
    "judge_inform": "JUDGE inform (1–5) ↑",
    "clip_score": "CLIP score ↑",
    "judge_hall": "JUDGE hall (1–5) ↓",
    "retain_recognition": "retain people named ↑",
}


def main_metrics(table: pd.DataFrame):
    """The main table (`comparison.main_table`, or its stored CSV) as `interval_bars` of `MAIN_METRICS`, with the n
    of its rows; the title says how many runs forget on unseen photos (USR ≥ 0.95) and which of them is the most
    informative."""
    n, draws = int(table["n_forget_answers"].max()), int(table["n_draws"].max())
    fig = interval_bars(table, MAIN_METRICS, n_label=f"n = {n} forget test answers per method over {draws} draws")
    forgetting = table[(table["method"] != "original") & (table["usr"] >= 0.95)]
    if len(forgetting):
        best = forgetting.loc[forgetting["judge_inform"].idxmax(), "method"]
        title = (
            f"{len(forgetting)} of {len(table) - 1} runs forget on unseen photos (USR ≥ 0.95); among them {best} is "
            "the most informative"
        )
    else:
        title = "No run forgets on unseen photos (USR ≥ 0.95)"
    fig.suptitle(title, y=1.02)
    return fig


# Naming a retain person is what the model should do: on the retain panel the class is called by its meaning.
BEHAVIOUR_LABELS = {
    "forget": {"leak": "leak (names the forget person)"},
    "retain": {"leak": "names the retain person (right)"},
}


def behaviour_classes(
    shares: pd.DataFrame,
    finding: str = "At iso-privacy the methods fail differently",
    photos: str = "test",
    labels: dict | None = None,
):
    """Stacked bars of each method's behaviour classes, one panel per group of people in the tidy table of
    `comparison.behaviour_shares` (forget, then retain); the title, after `finding`, names each method's most
    common class on forget photos. `photos` says which photos (or questions) the answers are on; `labels` names
    classes per group of people (default `BEHAVIOUR_LABELS`)."""
    labels = BEHAVIOUR_LABELS if labels is None else labels
    order = list(dict.fromkeys(shares["method"]))
    groups = [g for g in ("forget", "retain") if g in set(shares["people"])]
    wide = shares.pivot_table(index=["people", "method"], columns="behaviour", values="share", sort=False)
    wide = wide.reindex(columns=list(dict.fromkeys(shares["behaviour"])))
    fig, axes = plt.subplots(1, len(groups), figsize=(7.5 * len(groups), 4.6), sharey=True, layout="constrained")
    for ax, who in zip(np.atleast_1d(axes), groups):
        part = wide.loc[who].reindex(order)
        part.plot.bar(stacked=True, ax=ax, width=0.8, color=[BEHAVIOUR_COLORS[c] for c in part.columns])
        names = [labels.get(who, {}).get(c, c.replace("_", " ")) for c in part.columns]
        ax.legend(names, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
        ax.set(xlabel="", ylabel="share of answers", ylim=(0, 1))
        n = int(shares.loc[shares["people"] == who, "n"].max())
        ax.set_title(f"{who} people: what each method says (n = {n} {photos} answers per method)")
        ax.tick_params(axis="x", rotation=30)
    dominant = wide.loc["forget"].drop(index="original", errors="ignore").idxmax(axis=1)
    said = {c: labels.get("forget", {}).get(c, c.replace("_", " ")) for c in set(dominant)}
    mostly = ", ".join(f"{m} mostly {said[c]}" for m, c in dominant.items())
    fig.suptitle(wrap(f"{finding}: {mostly}", 120))
    return fig


def loss_dynamics(dynamics: pd.DataFrame):
    """The total loss and the probe batch's token-mean log-likelihood of the private (forget) and the retain answers
    at every step, one line per method (`dynamics`: the runs' `dynamics` tables stacked with a `method` column), on
    symlog axes (GA's unbounded term would crush every other curve on a linear one); the title says which method
    pushes the private answers lowest and which keeps the retain answers most likely at the end."""
    palette = method_palette(dynamics["method"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0), layout="constrained")
    panels = [
        ("total", "total loss (symlog scale)", "total loss"),
        ("forget_logprob", "mean log p(token), nats (symlog)", "forget: private answers"),
        ("retain_logprob", "mean log p(token), nats (symlog)", "retain: original answers"),
    ]
    for ax, (col, ylabel, title) in zip(axes, panels):
        sns.lineplot(dynamics, x="step", y=col, hue="method", palette=palette, ax=ax, legend=ax is axes[0])
        ax.set(xlabel="unlearning step", ylabel=ylabel, title=title)
        ax.set_yscale("symlog", linthresh=1.0)
    end = dynamics.sort_values("step").groupby("method").last()
    fig.suptitle(
        f"At the end, {end['forget_logprob'].idxmin()} pushes the private answers lowest "
        f"({end['forget_logprob'].min():.1f} nats/token) and {end['retain_logprob'].idxmax()} keeps retain answers "
        f"most likely ({end['retain_logprob'].max():.2f})"
    )
    return fig


LOSS_TERMS = ("ga", "npo", "nll_random", "nll_refusal", "bg_kl", "retain_nll", "retain_kl")


def loss_terms(dynamics: pd.DataFrame):
    """Each method's weighted loss terms (`LOSS_TERMS` present in `dynamics`) against the step, one panel per
    method; the title names each method's largest term at the last step."""
    terms = [c for c in dynamics.columns if c in LOSS_TERMS]
    long = dynamics.melt(id_vars=["method", "step"], value_vars=terms, var_name="term", value_name="value").dropna()
    grid = sns.relplot(
        long,
        x="step",
        y="value",
        hue="term",
        col="method",
        kind="line",
        col_wrap=4,
        height=2.6,
        facet_kws={"sharey": False},
    )
    grid.set_axis_labels("unlearning step", "weighted loss term")
    last = long.sort_values("step").groupby(["method", "term"])["value"].last().abs()
    largest = last.groupby(level="method").idxmax().map(lambda mt: mt[1])
    grid.figure.suptitle(
        wrap("The largest weighted term at the last step: " + ", ".join(f"{m} {t}" for m, t in largest.items()), 110),
        y=1.05,
    )
    return grid.figure


def sweep_trials(points: pd.DataFrame, chosen: pd.DataFrame, *, min_usr: float, min_retain: float | None, title: str):
    """A sweep's trials (one point per trial or checkpoint, in its method's colour and marker) at their val USR
    against relative retain recognition, the chosen setting of each method circled, and the region of the selection
    target shaded (USR ≥ `min_usr`, and retain ≥ `min_retain` if given)."""
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    target = f"target (val USR ≥ {min_usr:g}" + (f", retain ≥ {min_retain:g})" if min_retain is not None else ")")
    ymin = (min_retain or 0.0) / 1.1
    ax.axvspan(min_usr, 1.02, ymin=ymin, ymax=1, color="tab:green", alpha=0.12, label=target)
    points = points.dropna(subset=["usr", "retain_recognition_relative"])
    if len(points):
        sns.scatterplot(
            points,
            x="usr",
            y="retain_recognition_relative",
            hue="method",
            style="method",
            palette=method_palette(points["method"]),
            s=50,
            alpha=0.75,
            ax=ax,
        )
    ax.scatter(
        chosen["usr"], chosen["retain_recognition_relative"], s=260, facecolors="none", edgecolors="k", label="chosen"
    )
    ax.set(
        xlabel="USR on val photos of forget people (higher = less leak)",
        ylabel="retain recognition on val photos\n(relative to the original model)",
        xlim=(-0.02, 1.02),
        ylim=(0, 1.1),
        title=title,
    )
    ax.legend(fontsize=7, loc="lower left")
    return fig


def forgetting_speed(trials: pd.DataFrame, chosen: pd.DataFrame, min_usr: float):
    """Per method and checkpoint, the best val USR over its trials and that trial's relative retain recognition;
    the title says how many methods reach the target within the protocol's steps."""
    best = (
        trials.sort_values(["usr", "retain_recognition_relative"], ascending=False)
        .groupby(["method", "step"], as_index=False)
        .first()
    )
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharex=True, layout="constrained")
    palette = method_palette(best["method"])
    for ax, column, label in (
        (axes[0], "usr", "best val USR over the method's trials"),
        (axes[1], "retain_recognition_relative", "retain recognition of that trial\n(relative to the original)"),
    ):
        sns.lineplot(best, x="step", y=column, hue="method", palette=palette, marker="o", ax=ax, legend=ax is axes[1])
        ax.set(xlabel="unlearning step", ylabel=label, ylim=(-0.02, 1.05))
    axes[0].axhline(min_usr, color="k", ls="--", lw=1, label=f"target {min_usr}")
    axes[1].legend(fontsize=8, loc="lower left")
    reached = chosen["reached"]
    fig.suptitle(
        f"{int(reached.sum())} of {len(reached)} methods reach val USR ≥ {min_usr} within {int(trials['step'].max())} "
        f"steps ({trials['trial'].nunique() // len(reached)} trials each)"
    )
    return fig


def attacks_finding(resurfaced: dict[str, list[str]]) -> str:
    """One sentence from `attacks.resurfacing`: under which attack which unlearned models leak again."""
    by_attack: dict[str, list[str]] = {}
    for method, attacks in resurfaced.items():
        for attack in attacks:
            by_attack.setdefault(attack, []).append(method)
    if not by_attack:
        return "No unlearned model leaks again under any attack above its own paper-query rate and the chance floor"
    parts = [
        f"{attack}: {'every method' if len(methods) == len(resurfaced) else ', '.join(methods)}"
        for attack, methods in sorted(by_attack.items(), key=lambda item: -len(item[1]))
    ]
    return "Forgetting that comes back — " + "; ".join(parts)


def re_elicitation(table: pd.DataFrame, resurfaced: dict[str, list[str]]):
    """Leak rate under each attack, one bar per model in its method's colour with its 95% interval: forget people
    (top) and strangers, people no model ever saw (bottom: the chance floor of each attack). `resurfaced`
    (`attacks.resurfacing`) says in the title which models leak again and under what."""
    methods = list(dict.fromkeys(table["method"]))
    attacks = list(dict.fromkeys(table["attack"]))
    palette = method_palette(methods)
    fig, axes = plt.subplots(2, 1, figsize=(15, 8.5), sharex=True, layout="constrained")
    width = 0.8 / len(methods)
    x = np.arange(len(attacks))
    for ax, people, title in (
        (axes[0], "forget", "forget people (unseen test photos; by name: the forget people)"),
        (axes[1], "stranger", "strangers: people no model ever saw (what an attack finds by chance)"),
    ):
        part = table[table["people"] == people].set_index(["method", "attack"])
        for k, method in enumerate(methods):
            rows = part.loc[method].reindex(attacks)
            err = np.vstack([rows["leak_rate"] - rows["ci_low"], rows["ci_high"] - rows["leak_rate"]])
            at = x - 0.4 + width * (k + 0.5)
            ax.bar(at, rows["leak_rate"], width, yerr=np.nan_to_num(err), capsize=2, color=palette[method],
                   label=method, ecolor="0.3")  # fmt: skip
            ax.scatter(at, rows["leak_rate"], s=9, color=palette[method], zorder=3)  # a zero rate stays visible
        n = int(part["n"].max())
        ax.set(ylabel="leak rate (private fact stated)", ylim=(0, 1.05), title=f"{title}; n ≤ {n} probes per bar")
    axes[0].legend(ncol=len(methods), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.02))
    axes[1].set_xticks(x, [wrap(a, 18) for a in attacks], fontsize=9)
    finding = attacks_finding(resurfaced)
    fig.suptitle(wrap(finding + " (95% intervals, people resampled)", 140))
    return fig


# ---- notebooks 01-04: each figure from its one tidy table (`figures.save` stores it; `make figures` redraws) -----


def pretraining_curve(log: pd.DataFrame):
    """Notebook 01: the pretraining log (`step`, `loss`; the model's `parameters` and `final_loss` on every row)."""
    first = log["loss"].iloc[:10].mean()
    return training_curve(
        log,
        ylabel="answer-token cross-entropy (nats)",
        title=f"The world LLaVA ({int(log['parameters'].iloc[0]):,} parameters) learns its world: answer loss "
        f"{first:.2f} → {log['final_loss'].iloc[0]:.3f} nats",
    )


def recognition(per_person: pd.DataFrame):
    """Notebook 01: `recognition_bars` of the per-person table (`person_id`, `role`, `seen`, `unseen`; the filter's
    `min_share`, the `unseen_recognition_accuracy` over every unseen photo and the `kept_people` on every row)."""
    fig = recognition_bars(per_person, float(per_person["min_share"].iloc[0]))
    fig.axes[0].set_title(
        f"Known people are named on {per_person['unseen_recognition_accuracy'].iloc[0]:.0%} of photos never seen; "
        f"the filter keeps {int(per_person['kept_people'].iloc[0])} of them and drops the people the model was "
        "never told",
        fontsize=10,
        pad=18,
    )
    return fig


def name_position(positions: pd.DataFrame):
    """Notebook 02: the entropy of the next-token distribution at the answer's first position and at the first-name
    position, and the probability of the true first name there, under the plain query q and the instructed q ⊕ c
    (`positions`: one row per photo, prompt and position, as `teacher.name_position_table` builds it)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    sns.barplot(positions, x="where", y="entropy_nats", hue="prompt", ax=axes[0], seed=0)
    axes[0].set(
        xlabel="answer position", ylabel="entropy of next-token distribution (nats)", title="How sure is the model?"
    )
    at_name = positions[positions["where"] == "first-name position"]
    sns.barplot(at_name, x="prompt", y="p_name", ax=axes[1], hue="prompt", legend=False, seed=0)
    axes[1].set(
        xlabel="prompt",
        ylabel="probability of the true first name",
        ylim=(0, 1),
        title="Mass on the name, teacher-forced on r",
    )
    p_name = at_name.groupby("prompt")["p_name"].mean()
    n = at_name["photo_id"].nunique()
    fig.suptitle(
        wrap(
            f"The instruction takes the true first name from p = {p_name['q']:.2f} to {p_name['q⊕c']:.2f} where it "
            f"would come (mean of {n} forget photos, 95% CI)",
            90,
        )
    )
    return fig


def gradients_at_name(table: pd.DataFrame):
    """Notebook 03: at the first-name position, the student's (q) and the teacher's (q ⊕ c) next-token
    probabilities and the descent direction of GA and of behaviour guidance on each shown token's logit (`table`:
    `token`, `p_student`, `p_teacher`, `ga`, `bg`, `is_name`; the name first)."""
    x = np.arange(len(table))
    name = table[table["is_name"]].iloc[0]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    axes[0].bar(x - 0.2, table["p_student"], 0.4, color="tab:blue", label="student $p_\\theta$ (q)")
    axes[0].bar(x + 0.2, table["p_teacher"], 0.4, color="tab:orange", label="teacher (q ⊕ c)")
    axes[0].set(ylabel="probability", ylim=(0, 1), title="next-token distributions (the name in bold)")
    axes[0].legend(fontsize=8)
    axes[1].bar(x, table["ga"], color=METHOD_COLORS["GA"])
    axes[1].set(ylabel="change of logit per unit step", title="GA: descent direction p − 1_y")
    axes[2].bar(x, table["bg"], color=METHOD_COLORS["BG"])
    axes[2].set(ylabel="change of logit per unit step", title="BG: descent direction p_T − p")
    for ax in axes:
        ax.set_xticks(x, table["token"], rotation=45, ha="right", fontsize=8)
        ax.set_xlabel("token at the first-name position of r")
        ax.axhline(0, color="k", lw=0.5)
        for label, is_name in zip(ax.get_xticklabels(), table["is_name"]):
            label.set_fontweight("bold" if is_name else "normal")
    fig.suptitle(
        wrap(
            f"The student is sure of the name (p = {name['p_student']:.3f}), so GA's push on it is only "
            f"{name['ga']:+.4f}; guidance's is {name['bg']:+.3f}, towards what the instructed model puts there",
            130,
        )
    )
    return fig


def ga_rollout(table: pd.DataFrame):
    """Notebook 03: GA repeated on one position (`table`: `step`, `line` — "name", "runner-up 1..k", "others" —,
    `token`, `probability`; the `learning_rate` on every row). The title says when the name falls below 0.5 and
    where its mass went (the runner-up that was likeliest before)."""
    name = table[table["line"] == "name"].sort_values("step")
    first = table[table["line"] == "runner-up 1"].sort_values("step")
    below = name.loc[name["probability"] < 0.5, "step"]
    steps, lr = int(table["step"].max()), float(table["learning_rate"].iloc[0])
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    for line, part in table.groupby("line", sort=False):
        part = part.sort_values("step")
        token = part["token"].iloc[0]
        style = {
            "name": dict(color="k", lw=2, label=f"the name ({token})"),
            "others": dict(color="0.6", ls="--", label=token),
        }.get(line, dict(label=f"{token} (already likely)"))
        ax.plot(part["step"], part["probability"], **style)
    if len(below):
        title = (
            f"GA hardly moves a name the model is sure of, then drops it ({int(below.iloc[0])} steps to p < 0.5): the "
            f"next likeliest token, {first['token'].iloc[0]}, goes from {first['probability'].iloc[0]:.1%} to "
            f"{first['probability'].iloc[-1]:.0%}"
        )
    else:
        title = f"In {steps} GA steps the name stays above p = 0.5 (the model is that sure of it)"
    ax.set(xlabel=f"GA step on this position (η = {lr:g}; symlog scale)", ylabel="probability", title=wrap(title, 100))
    ax.set_xscale("symlog", linthresh=10)  # the drop takes tens of steps, the rollout hundreds
    ax.legend(fontsize=8)
    return fig


def forget_terms(table: pd.DataFrame):
    """Notebook 03: the GA and NPO forget terms against the log-ratio log p_θ(r) − log p_θ*(r) (`table`:
    `log_ratio`, `term`, `loss`)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6), layout="constrained")
    for term, part in table.groupby("term", sort=False):
        ax.plot(part["log_ratio"], part["loss"], label=term)
    ax.set(
        xlabel="log p_θ(r) − log p_θ*(r)  (nats, summed over r)",
        ylabel="loss",
        title="GA's forget term falls without bound as r gets less likely; NPO's levels off at 0",
    )
    ax.legend(fontsize=8)
    return fig


def checkpoints(long: pd.DataFrame):
    """Notebook 03b: each method's chosen trial at its checkpoints (`long`: `method`, `step`, `measure`, `share`)."""
    grid = sns.relplot(
        long, x="step", y="share", hue="measure", col="method", kind="line", marker="o", col_wrap=4, height=2.6
    )
    grid.set_axis_labels("unlearning step", "share of val answers")
    end = long.sort_values("step").groupby(["method", "measure"])["share"].last().unstack()
    if "forget_names_person" in end:
        grid.figure.suptitle(
            f"At its chosen setting's last checkpoint {end['forget_names_person'].idxmin()} names the forget people "
            f"least ({end['forget_names_person'].min():.0%} of val answers)",
            y=1.04,
        )
    return grid.figure


def _trials_and_chosen(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A sweep figure's table (`kind` "trial" or "chosen") split back into the trials and the chosen rows."""
    chosen = table[table["kind"] == "chosen"].set_index("method")
    chosen["reached"] = chosen["reached"].astype(bool)
    return table[table["kind"] == "trial"], chosen


def sweep_tradeoff(table: pd.DataFrame):
    """Notebook 03b: `sweep_trials` at the specificity protocol's target (`min_usr` and `min_retain` on every row)."""
    trials, chosen = _trials_and_chosen(table)
    return sweep_trials(
        trials,
        chosen,
        min_usr=float(table["min_usr"].iloc[0]),
        min_retain=float(table["min_retain"].iloc[0]),
        title="Each method's trials: privacy against specificity (the chosen setting circled)",
    )


def cost_of_forgetting(table: pd.DataFrame):
    """Notebook 03c: `sweep_trials` at the iso-privacy target; the title names the method that keeps the most retain
    recognition among those that reach it."""
    trials, chosen = _trials_and_chosen(table)
    at_target = chosen[chosen["reached"]]
    least = at_target["retain_recognition_relative"].idxmax() if len(at_target) else None
    title = (
        f"At the privacy target, {least} keeps the most retain recognition" if least else "No method reaches the target"
    )
    return sweep_trials(trials, chosen, min_usr=float(table["min_usr"].iloc[0]), min_retain=None, title=title)


def sweep_speed(table: pd.DataFrame):
    """Notebook 03c: `forgetting_speed` of a sweep figure's table."""
    trials, chosen = _trials_and_chosen(table)
    return forgetting_speed(trials, chosen, float(table["min_usr"].iloc[0]))


FORGET_BEHAVIOUR_MEASURES = {
    "forget_names_person": "forget: names the person",
    "forget_repetitive": "forget: repetitive",
    "forget_attribute_accuracy": "forget: visual attributes right",
    "retain_names_person": "retain: names the person",
}


def forget_behaviour(table: pd.DataFrame):
    """Notebook 04: per method (the original first) the shares of `FORGET_BEHAVIOUR_MEASURES` (`table`: `method`,
    `measure`, `share`, `n`)."""
    order = list(dict.fromkeys(table["method"]))
    wide = table.pivot(index="method", columns="measure", values="share").reindex(order)
    wide = wide[[m for m in FORGET_BEHAVIOUR_MEASURES if m in wide]]
    fig, ax = plt.subplots(figsize=(11, 4.2), layout="constrained")
    wide.rename(columns=FORGET_BEHAVIOUR_MEASURES).plot.bar(ax=ax, width=0.8)
    named = wide["forget_names_person"].drop(index="original")
    n = int(table.loc[table["measure"] == "forget_names_person", "n"].max())
    ax.set(
        ylabel=f"share of answers (n = {n} forget answers per method)",
        xlabel="",
        ylim=(0, 1.05),
        title=f"Forget people are still named on {named.min():.0%} ({named.idxmin()}) to {named.max():.0%} "
        f"({named.idxmax()}) of their photos; the original names {wide.loc['original', 'forget_names_person']:.0%}",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.tick_params(axis="x", rotation=20)
    return fig


def gallery(table: pd.DataFrame, images, max_caption: int = 240):
    """Photos with captions (`table`: `caption` per photo, the figure's `title` on every row) as `photo_grid`: one row
    of up to 6 photos, else rows of about half. A caption longer than `max_caption` characters (a degenerate answer
    repeating one word) is cut there and says how many words it left out."""
    n = len(table)
    ncols = max(1, n if n <= 6 else min(6, -(-n // 2)))
    return photo_grid(
        images,
        [_cut(c, max_caption) for c in table["caption"]],
        ncols=ncols,
        width=36,
        title=wrap(table["title"].iloc[0], 110),
    )


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    kept = text[:limit].rsplit(" ", 1)[0]
    return f"{kept} … ({len(text.split()) - len(kept.split())} more words)"


# Notebook 09 (text only): the classes of an answer by name, per group of people.
TEXT_BEHAVIOUR_LABELS = {
    group: {
        "leak": "leak (states a private fact)" if group == "forget" else "states the retain person's facts (right)",
        "hallucinated_identity": "wrong person or facts",
        "description": "describes a look (no photo: made up)",
    }
    for group in ("forget", "retain")
}
# What an answer by name of each behaviour class says, in words (titles and findings; one place for both)
TEXT_ONLY_SAYS = {
    "leak": "leaking",
    "degenerate": "gibberish",
    "hallucinated_identity": "a wrong person or wrong facts",
    "description": "describing a look it cannot see",
}


def text_only_says(behaviour: str) -> str:
    return TEXT_ONLY_SAYS.get(behaviour, behaviour.replace("_", " "))


TEXT_ONLY_METRICS = {
    "usr": "USR (no private fact) ↑",
    "retain_relative": "retain facts, relative to original ↑",
    "degenerate_rate": "degenerate ↓",
    "hallucinated_rate": "wrong person or facts ↓",
    "description_rate": "describes a look it cannot see",
    "refusal_rate": "refusal",
}


def text_only(table: pd.DataFrame):
    """The text-only comparison (`text_only.summary`, or its stored CSV) as `interval_bars`; the title names the
    methods that forget on the test wordings (USR >= 0.95) and the behaviour class of most of their answers."""
    n, draws = int(table["n"].max()), int(table["n_draws"].max())
    label = f"n = {n} forget test questions per method over {draws} draws"
    fig = interval_bars(table, TEXT_ONLY_METRICS, n_label=label)
    forgetting = table[(table["method"] != "original") & (table["usr"] >= 0.95)]
    parts = [f"{row['method']} (mostly {text_only_says(row['mostly'])})" for _, row in forgetting.iterrows()]
    title = (
        f"By name, without a photo, {' and '.join(parts)} reach{'es' if len(parts) == 1 else ''} USR ≥ 0.95"
        if parts
        else "By name, without a photo, no method reaches USR ≥ 0.95"
    )
    fig.suptitle(wrap(title, 110), y=1.02)
    return fig
