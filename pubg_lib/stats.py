"""Summaries of repeated measurements: mean, s.d. and n over seeds, bootstrap intervals, Pareto fronts."""

from __future__ import annotations

import numpy as np
import pandas as pd


def summarise(frame: pd.DataFrame, by, metrics) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds of each metric, per group of `by` (columns `<m>_mean`,
    `<m>_sd`, and `n`)."""
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, *metrics] if c not in frame]
    if missing:
        raise KeyError(f"columns {missing} not in the frame (it has {list(frame.columns)})")
    grouped = frame.groupby(by, sort=False)
    out = grouped[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{'sd' if stat == 'std' else stat}" for m, stat in out.columns]
    out["n"] = grouped.size()
    return out.reset_index()


def bootstrap_interval(
    values, *, groups=None, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`.

    With `groups` (one label per value, e.g. the forget-set draw each answer came from), resampling is two-level:
    groups are resampled with replacement, then values within each drawn group, so that the interval covers the
    spread between draws as well as between answers."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, len(values), size=(n_boot, len(values)))
        stats = values[idx].mean(axis=1)
    else:
        groups = np.asarray(groups)
        members = [values[groups == g] for g in pd.unique(groups)]
        sizes = np.array([len(m) for m in members])
        picks = rng.integers(0, len(members), size=(n_boot, len(members)))  # which group fills each slot
        total = np.zeros(n_boot)
        for k, member in enumerate(members):  # a group's resampled sum, drawn afresh for every slot it fills
            chosen = picks == k
            count = int(chosen.sum())
            if count:
                sums = member[rng.integers(0, len(member), size=(count, len(member)))].sum(axis=1)
                np.add.at(total, np.nonzero(chosen)[0], sums)
        stats = total / sizes[picks].sum(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def pareto_front(x, y) -> np.ndarray:
    """Mask of the points that no other point dominates when both x and y are to be maximised (a point dominates
    another if it is at least as good on both and strictly better on one)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in shape: {x.shape} vs {y.shape}")
    keep = np.ones(len(x), dtype=bool)
    for i in range(len(x)):
        better_eq = (x >= x[i]) & (y >= y[i])
        strictly = (x > x[i]) | (y > y[i])
        keep[i] = not np.any(better_eq & strictly)
    return keep


def as_record(summary: pd.DataFrame, index, digits: int = 4) -> dict:
    """A summary table as nested JSON-ready dicts keyed by `index`."""
    index = [index] if isinstance(index, str) else list(index)
    frame = summary.set_index(index).round(digits)
    return {" | ".join(map(str, k)) if isinstance(k, tuple) else str(k): v for k, v in frame.to_dict("index").items()}
