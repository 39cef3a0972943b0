"""Notebook 07's ablations: which part of PUBG does what.

Starting from PUBG's stored settings, one thing changes at a time: the loss terms, λ, the reference (instruction
wording, greedy or sampled) and the LoRA rank; each change is a group of `experiments.Condition`s. Every figure is
drawn from the runs table alone (one row per run and seed, its `group` column naming the study, as notebook 07
stores it in `data/results/07_runs.csv`), so the same function redraws it from the stored table, and `claims`
checks the paper's statements about the ablations on the same numbers.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from peft import get_peft_model

from . import plots, prompts
from .config import ConfigError
from .experiments import Experiment, conditions
from .stats import pareto_front, summarise
from .unlearn import UnlearnConfig, lora_config

# The per-run scores summarised over seeds (unseen: the forget people's test photos).
METRICS = [
    "usr_unseen",
    "usr_seen",
    "judge_inform_unseen",
    "judge_hall_unseen",
    "clip_score_unseen",
    "attribute_accuracy_unseen",
    "degenerate_rate_unseen",
    "hallucinated_identity_rate_unseen",
    "retain_recognition_relative",
]
# (column, panel title, y range): the scores the bar and point figures show.
PANELS = {
    "usr_unseen": ("USR, unseen photos ↑", (0, 1.1)),
    "judge_inform_unseen": ("JUDGE inform, unseen (1–5) ↑", (0, 5.5)),
    "degenerate_rate_unseen": ("degenerate share, unseen ↓", (0, 1.1)),
    "retain_recognition_relative": ("retain recognition / original ↑", (0, 1.2)),
}
# What makes two rows of the runs table the same run (the same condition appears in several studies: PUBG itself).
RUN_KEYS = ["method", "seed", "instruction", "reference_temperature", "cfg_lam", "cfg_lora_rank"]
# Each loss-term variant in the colour of the method it amounts to (GA plus a retain term is GD's composition).
COMPONENT_METHODS = {"GA only": "GA", "GA + retain (λ=0)": "GD", "BG + retain (no GA)": "BG", "PUBG": "PUBG"}


def check_parameters(lams, ranks, instructions, reference_temperatures) -> None:
    """Notebook 07's parameters, checked before any model loads: λ ≥ 0, ranks and temperatures > 0, known
    instruction wordings (`ConfigError`, by name)."""
    for wording in instructions:
        prompts.instruction(wording)  # an unknown wording fails by name
    bad = {
        "lams": [x for x in lams if not x >= 0],
        "ranks": [r for r in ranks if not (isinstance(r, int) and r > 0)],
        "reference_temperatures": [t for t in reference_temperatures if not t > 0],
    }
    bad = {name: values for name, values in bad.items() if values}
    if bad:
        raise ConfigError(f"λ must be >= 0, LoRA ranks positive integers and temperatures > 0; got {bad}")


def component_settings(pubg: UnlearnConfig) -> dict[str, UnlearnConfig]:
    """PUBG's loss with a term removed: the same learning rate, steps and batches (labels of `COMPONENT_METHODS`)."""
    return {
        "GA only": replace(pubg, method="GA"),
        "GA + retain (λ=0)": replace(pubg, lam=0.0),
        "BG + retain (no GA)": replace(pubg, method="BG"),
        "PUBG": pubg,
    }


def lambda_settings(pubg: UnlearnConfig, lams) -> dict[str, UnlearnConfig]:
    return {f"λ={lam:g}": replace(pubg, lam=float(lam)) for lam in lams}


def rank_settings(pubg: UnlearnConfig, ranks) -> dict[str, UnlearnConfig]:
    """LoRA ranks with α = 2·rank."""
    return {f"rank {r}": replace(pubg, lora_rank=int(r), lora_alpha=2 * int(r)) for r in ranks}


def reference_variants(instructions, temperatures) -> list[tuple[str, str, float]]:
    """(label, instruction wording, sampling temperature): each wording greedy, then the first one sampled at each
    temperature."""
    greedy = [(w, w, 0.0) for w in instructions]
    return greedy + [(f"{instructions[0]}, sampled T={t:g}", instructions[0], float(t)) for t in temperatures]


def reference_runs(experiment: Experiment, pubg: UnlearnConfig, references, seeds, size: int) -> pd.DataFrame:
    """PUBG trained with each reference of `reference_variants`, one row per run, beside the quality of that
    reference on the same seed's forget people (the columns of `REFERENCE_SCORES`)."""
    frames = []
    for label, wording, temperature in references:
        found = conditions(
            "reference", {label: pubg}, seeds, [size], instruction=wording, reference_temperature=temperature
        )
        runs = experiment.run(found, desc=f"reference {label}")
        quality = [{"seed": s, **experiment.reference_quality(size, s, wording, temperature)} for s in seeds]
        frames.append(runs.merge(pd.DataFrame(quality), on="seed"))
    return pd.concat(frames, ignore_index=True)


def group(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The runs of one study (`terms`, `lambda`, `reference`, `lora_rank`) of the runs table."""
    part = runs[runs["group"] == name]
    if part.empty:
        raise KeyError(f"no runs of group {name!r} in the table (it has {sorted(set(runs['group']))})")
    return part


def _seeds(runs: pd.DataFrame) -> str:
    return f"{runs['seed'].nunique()} seeds, mean ± 1 s.d."


def components_figure(terms: pd.DataFrame):
    """One panel per score of `PANELS`, one bar per loss-term variant (mean over seeds, ± 1 s.d.) with its value
    written on it (a bar at zero or at the scale's floor stays readable); the title says which variants forget
    without collapsing."""
    order = [c for c in COMPONENT_METHODS if c in set(terms["label"])]
    palette = {label: plots.method_color(COMPONENT_METHODS[label]) for label in order}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.3 * len(PANELS), 4.4), layout="constrained")
    for ax, (col, (name, ylim)) in zip(axes, PANELS.items()):
        sns.barplot(
            terms,
            x="label",
            y=col,
            hue="label",
            palette=palette,
            saturation=1,
            errorbar="sd",
            capsize=0.15,
            ax=ax,
            order=order,
        )
        ax.set(title=name, xlabel="", ylabel="", ylim=ylim)
        plots.label_bars(ax)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    means = terms.groupby("label")[["usr_unseen", "degenerate_rate_unseen"]].mean()
    clean = [c for c in order if means.loc[c, "usr_unseen"] >= 0.95 and means.loc[c, "degenerate_rate_unseen"] < 0.1]
    worst = means["degenerate_rate_unseen"].idxmax()
    collapse = (
        f"{worst} degenerates on {means.loc[worst, 'degenerate_rate_unseen']:.0%} of answers"
        if means["degenerate_rate_unseen"].max() > 0
        else "none degenerates"
    )
    fig.suptitle(
        plots.wrap(
            f"Forgets on unseen photos (USR ≥ 0.95) without collapsing (degenerate < 10%): {', '.join(clean) or 'none'}"
            f"; {collapse} ({_seeds(terms)})",
            130,
        )
    )
    return fig


def lambda_summary(lam_runs: pd.DataFrame) -> pd.DataFrame:
    """Each λ's scores over seeds (`stats.summarise`), with whether it is on the privacy/informativeness Pareto
    front of the means."""
    summary = summarise(lam_runs.assign(lam=lam_runs["cfg_lam"]), ["label", "lam"], METRICS)
    summary["on_pareto_front"] = pareto_front(summary["judge_inform_unseen_mean"], summary["usr_unseen_mean"])
    return summary


def lambda_figure(lam_runs: pd.DataFrame):
    """Left: privacy against informativeness, one point per λ, with the Pareto front; right: each score against
    λ. The title says how USR and retain recognition move from the smallest λ to the largest."""
    summary = lambda_summary(lam_runs).sort_values("lam")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    plots.tradeoff(
        summary,
        "judge_inform_unseen",
        "usr_unseen",
        "label",
        ax=axes[0],
        xlabel="informativeness: JUDGE inform on unseen photos (1–5) →",
        ylabel="privacy: USR on unseen photos →",
        title=f"privacy against informativeness over λ ({_seeds(lam_runs)})",
    )
    for col, name, scale in (
        ("usr_unseen", "USR, unseen", 1.0),
        ("judge_inform_unseen", "JUDGE inform / 5, unseen", 5.0),
        ("retain_recognition_relative", "retain recognition / original", 1.0),
    ):
        axes[1].errorbar(
            summary["lam"],
            summary[f"{col}_mean"] / scale,
            yerr=summary[f"{col}_sd"] / scale,
            marker="o",
            capsize=3,
            label=name,
        )
    axes[1].set_xscale("symlog", linthresh=0.25)
    axes[1].set(
        xlabel="λ (weight of the behaviour-guidance KL; symlog scale)",
        ylabel="score (higher is better)",
        ylim=(0, 1.05),
        title="each score against λ",
    )
    axes[1].legend(fontsize=8, loc="lower right")
    first, last = summary.iloc[0], summary.iloc[-1]
    fig.suptitle(
        plots.wrap(
            f"USR on unseen photos {first['usr_unseen_mean']:.2f} at λ={first['lam']:g} → "
            f"{last['usr_unseen_mean']:.2f} at λ={last['lam']:g}; retain recognition kept at "
            f"{summary['retain_recognition_relative_mean'].min():.2f} or more of the original's",
            130,
        )
    )
    return fig


REFERENCE_SCORES = {"reference_name_free": "names nobody", "reference_attribute_accuracy": "attributes right"}
RUN_SCORES = {
    "usr_unseen": "USR, unseen",
    "judge_inform_unseen": "JUDGE inform / 5, unseen",
    "retain_recognition_relative": "retain recognition / original",
}


def reference_figure(reference_runs: pd.DataFrame):
    """Left: the quality of each reference on the forget people's seen photos (columns of `REFERENCE_SCORES`,
    one value per run); right: PUBG trained with it. The title says how far PUBG's privacy follows its
    reference."""
    if "reference_name_free" not in reference_runs:  # (a runs table stored before 07 kept the reference quality)
        raise KeyError("reference_name_free")
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8), layout="constrained")
    for ax, scores, title, ylabel in (
        (axes[0], REFERENCE_SCORES, "the reference answers (teacher, seen photos)", "share"),
        (axes[1], RUN_SCORES, "PUBG trained with that reference", "score (higher is better)"),
    ):
        scaled = reference_runs.assign(judge_inform_unseen=reference_runs["judge_inform_unseen"] / 5)
        present = [c for c in scores if c in scaled]  # (a dataset without attribute truth has no attribute score)
        long = scaled.melt(id_vars=["label", "seed"], value_vars=present, var_name="score", value_name="value")
        long["score"] = long["score"].map(scores)
        sns.barplot(long, x="label", y="value", hue="score", errorbar="sd", capsize=0.1, ax=ax)
        ax.set(title=title, xlabel="", ylabel=ylabel, ylim=(0, 1.1))
        ax.tick_params(axis="x", rotation=15, labelsize=9)
        ax.legend(fontsize=8, loc="lower left")
    usr = reference_runs.groupby("label")["usr_unseen"].mean()
    finding = (
        f"PUBG's privacy follows its reference: USR on unseen photos {usr.max():.2f} with '{usr.idxmax()}', "
        f"{usr.min():.2f} with '{usr.idxmin()}'"
        if usr.max() > usr.min()
        else f"PUBG reaches the same USR on unseen photos with every reference ({usr.max():.2f})"
    )
    fig.suptitle(f"{finding}\n({_seeds(reference_runs)}; 'no_identity_heldout' was never in pretraining)")
    return fig


def trainable_parameters(model, settings: dict[str, UnlearnConfig]) -> dict[int, int]:
    """The LoRA adapter's trainable parameters on `model` for each setting's rank (on a copy of the model)."""
    return {
        cfg.lora_rank: get_peft_model(copy.deepcopy(model), lora_config(cfg)).get_nb_trainable_parameters()[0]
        for cfg in settings.values()
    }


def rank_figure(rank_runs: pd.DataFrame, trainable: dict[int, int]):
    """USR, informativeness and retain recognition against the LoRA rank (`trainable`: the adapter's trainable
    parameters per rank, on the tick labels)."""
    runs = rank_runs.assign(rank=rank_runs["cfg_lora_rank"])
    ranks = sorted(runs["rank"].unique())
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.1), layout="constrained")
    for ax, col in zip(axes, ["usr_unseen", "judge_inform_unseen", "retain_recognition_relative"]):
        name, ylim = PANELS[col]
        sns.pointplot(runs, x="rank", y=col, errorbar="sd", capsize=0.1, ax=ax)
        ax.set(title=name, xlabel="LoRA rank", ylabel="", ylim=ylim)
        ax.set_xticks(range(len(ranks)), [f"{r}\n({trainable[int(r)] / 1e3:.0f}k params)" for r in ranks], fontsize=8)
    by_rank = runs.groupby("rank")[["usr_unseen", "judge_inform_unseen", "retain_recognition_relative"]].mean()
    low, high = by_rank.iloc[0], by_rank.iloc[-1]
    fig.suptitle(
        plots.wrap(
            f"LoRA rank {low.name} → {high.name}: USR on unseen photos {low['usr_unseen']:.2f} → "
            f"{high['usr_unseen']:.2f}, informativeness {low['judge_inform_unseen']:.2f} → "
            f"{high['judge_inform_unseen']:.2f}, retain kept {low['retain_recognition_relative']:.2f} → "
            f"{high['retain_recognition_relative']:.2f} ({_seeds(rank_runs)})",
            130,
        )
    )
    return fig


def claims(runs: pd.DataFrame) -> dict[str, bool]:
    """The paper's statements about the ablations, each checked on the means over seeds (unseen photos)."""
    term = summarise(group(runs, "terms"), "label", METRICS).set_index("label")
    lam = lambda_summary(group(runs, "lambda"))
    lam0 = lam.set_index("lam").loc[0.0] if 0.0 in set(lam["lam"]) else None
    positive = lam[lam["lam"] > 0]
    return {
        "GA alone collapses (degenerate >= 0.5)": bool(term.loc["GA only", "degenerate_rate_unseen_mean"] >= 0.5),
        "BG without GA leaks more than PUBG (lower USR)": bool(
            term.loc["BG + retain (no GA)", "usr_unseen_mean"] < term.loc["PUBG", "usr_unseen_mean"]
        ),
        "PUBG is more informative than GA + retain": bool(
            term.loc["PUBG", "judge_inform_unseen_mean"] > term.loc["GA + retain (λ=0)", "judge_inform_unseen_mean"]
        ),
        "some λ > 0 beats λ = 0 on privacy and informativeness": bool(
            lam0 is not None
            and (
                (positive["usr_unseen_mean"] >= lam0["usr_unseen_mean"])
                & (positive["judge_inform_unseen_mean"] >= lam0["judge_inform_unseen_mean"])
            ).any()
        ),
        "λ = 1 (the stored setting) is on the Pareto front": bool(lam.loc[lam["lam"] == 1.0, "on_pareto_front"].any()),
    }
