"""Notebook 07's ablations: the claims follow the numbers, and every figure is drawn from the stored runs table
alone (so it can be redrawn without training), with bars that stay readable at zero."""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from pubg_lib import ablations, paths, plots
from pubg_lib.config import ConfigError

matplotlib.use("Agg")

STORED_RUNS = paths.RESULTS / "07_runs.csv"
STORED = paths.RESULTS / "07_ablations.json"


def _runs(overrides: dict | None = None) -> pd.DataFrame:
    """A runs table with the terms and λ studies on two seeds: GA alone collapses, PUBG forgets and informs."""
    base = dict.fromkeys(ablations.METRICS, 0.0) | {"judge_inform_unseen": 4.0, "usr_unseen": 1.0}
    rows = []
    terms = {
        "GA only": {"degenerate_rate_unseen": 0.9, "judge_inform_unseen": 1.0},
        "GA + retain (λ=0)": {"usr_unseen": 0.5, "judge_inform_unseen": 3.5},
        "BG + retain (no GA)": {"usr_unseen": 0.9},
        "PUBG": {},
    }
    lams = {0.0: {"usr_unseen": 0.5, "judge_inform_unseen": 3.5}, 1.0: {}, 4.0: {"usr_unseen": 0.8}}
    for seed in (0, 1):
        for label, scores in terms.items():
            rows.append({"group": "terms", "label": label, "seed": seed, "cfg_lam": 1.0, **base, **scores})
        for lam, scores in lams.items():
            rows.append({"group": "lambda", "label": f"λ={lam:g}", "seed": seed, "cfg_lam": lam, **base, **scores})
    runs = pd.DataFrame(rows)
    for (group, label, column), value in (overrides or {}).items():
        runs.loc[(runs["group"] == group) & (runs["label"] == label), column] = value
    return runs


def test_each_ablation_claim_follows_its_numbers():
    assert ablations.claims(_runs()) == {
        "GA alone collapses (degenerate >= 0.5)": True,
        "BG without GA leaks more than PUBG (lower USR)": True,
        "PUBG is more informative than GA + retain": True,
        "some λ > 0 beats λ = 0 on privacy and informativeness": True,
        "λ = 1 (the stored setting) is on the Pareto front": True,
    }
    flipped = {
        ("terms", "GA only", "degenerate_rate_unseen"): 0.4,
        ("terms", "BG + retain (no GA)", "usr_unseen"): 1.0,
        ("terms", "GA + retain (λ=0)", "judge_inform_unseen"): 4.0,  # a tie is not "more informative"
        ("lambda", "λ=0", "usr_unseen"): 1.0,
        ("lambda", "λ=0", "judge_inform_unseen"): 4.5,  # λ=0 now beats every λ > 0 on both axes
    }
    assert not any(ablations.claims(_runs(flipped)).values())


def test_the_stored_claims_are_those_of_the_stored_runs():
    """`data/results/07_ablations.json`'s claims, recomputed from `07_runs.csv` by today's code."""
    assert ablations.claims(pd.read_csv(STORED_RUNS)) == json.loads(STORED.read_text())["claims"]


def test_the_components_figure_is_drawn_from_the_runs_table_with_every_bar_labelled():
    runs = pd.read_csv(STORED_RUNS)
    terms = ablations.group(runs, "terms")
    fig = ablations.components_figure(terms)
    means = terms.groupby("label", sort=False)["degenerate_rate_unseen"].mean()
    worst = means.idxmax()
    assert f"{worst} degenerates on {means[worst]:.0%}" in fig._suptitle.get_text().replace("\n", " ")
    for ax, (column, (title, _ylim)) in zip(fig.axes, ablations.PANELS.items()):
        assert ax.get_title() == title and ax.get_ylim()[0] == 0  # bars start at 0: a floor score stays visible
        bars = [b for b in ax.patches if b.get_width() > 0]
        order = [t.get_text() for t in ax.get_xticklabels()]
        expected = terms.groupby("label")[column].mean().reindex(order)
        np.testing.assert_allclose([b.get_height() for b in bars], expected, atol=1e-9)
        labels = [t.get_text() for t in ax.texts]
        assert labels == [f"{v:.2f}" for v in expected]  # a zero bar says 0.00 instead of vanishing
        colors = [to_hex(b.get_facecolor()) for b in bars]
        assert colors == [plots.method_color(ablations.COMPONENT_METHODS[label]) for label in order]


def test_the_lambda_and_rank_figures_are_drawn_from_the_runs_table():
    runs = pd.read_csv(STORED_RUNS)
    lam_runs = ablations.group(runs, "lambda")
    fig = ablations.lambda_figure(lam_runs)
    by_lam = lam_runs.groupby("cfg_lam")["usr_unseen"].mean()
    title = fig._suptitle.get_text().replace("\n", " ")
    assert f"{by_lam.iloc[0]:.2f} at λ={by_lam.index[0]:g}" in title and f"at λ={by_lam.index[-1]:g}" in title
    assert "3 seeds" in fig.axes[0].get_title()
    trainable = {int(k): v for k, v in json.loads(STORED.read_text())["lora_trainable_parameters"].items()}
    fig = ablations.rank_figure(ablations.group(runs, "lora_rank"), trainable)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][0].startswith("2\n(17k params)")
    with pytest.raises(KeyError, match="no runs of group 'nope'"):
        ablations.group(runs, "nope")


@pytest.mark.parametrize(
    "bad",
    [
        {"lams": [-1.0]},
        {"lams": [float("nan")]},
        {"ranks": [0]},
        {"ranks": [2.5]},
        {"reference_temperatures": [0.0]},
    ],
)
def test_bad_ablation_parameters_are_refused_by_name(bad):
    parameters = {"lams": [0.0, 1.0], "ranks": [2, 8], "instructions": ["describe_only"], "reference_temperatures": []}
    with pytest.raises(ConfigError, match=next(iter(bad))):
        ablations.check_parameters(**(parameters | bad))


def test_an_unknown_instruction_wording_is_refused_by_name():
    with pytest.raises(Exception, match="no_such_wording"):
        ablations.check_parameters([1.0], [8], ["no_such_wording"], [])
