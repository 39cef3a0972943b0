"""Notebook 06's generalisation study: its conditions, and figures drawn from the stored runs table alone."""

import json

import matplotlib
import pandas as pd
import pytest

from pubg_lib import generalization, paths
from pubg_lib.experiments import check_score_ranges
from pubg_lib.unlearn import UnlearnConfig

matplotlib.use("Agg")

STORED_RUNS = paths.RESULTS / "06_runs.csv"
STORED = paths.RESULTS / "06_generalization.json"


def test_scaled_pubg_runs_with_steps_proportional_to_the_forget_set_size():
    settings = {"NPO": UnlearnConfig(method="NPO", steps=30), "PUBG": UnlearnConfig(method="PUBG", steps=30)}
    todo = generalization.generalisation_conditions(settings, ["NPO", "PUBG"], [0, 1], [5, 10, 20], [5, 20])
    plain = [c for c in todo if c.label != generalization.SCALED]
    assert len(plain) == 2 * 2 * 3 and {c.config.steps for c in plain} == {30}
    scaled = {(c.n_forget, c.seed): c.config.steps for c in todo if c.label == generalization.SCALED}
    assert scaled == {(5, 0): 30, (5, 1): 30, (20, 0): 120, (20, 1): 120}
    assert all(c.label != generalization.SCALED for c in generalization.generalisation_conditions(
        settings, ["PUBG"], [0], [5, 20], [5]))  # fmt: skip


def test_the_figures_are_drawn_from_the_stored_runs_table():
    frame = pd.read_csv(STORED_RUNS)
    stored = json.loads(STORED.read_text())
    assert generalization.variants(frame) == stored["variants"]
    fig = generalization.seen_unseen_figure(frame)
    assert [ax.get_title() for ax in fig.axes] == ["original", *stored["variants"]]
    fig = generalization.forget_size_figure(frame)
    pubg = frame[frame["label"] == "PUBG"].groupby("n_forget")["usr_unseen"].mean()
    title = fig._suptitle.get_text().replace("\n", " ")
    assert f"PUBG {pubg.iloc[0]:.2f} → {pubg.iloc[-1]:.2f}" in title
    fig = generalization.paraphrases_figure(frame, stored["paraphrases"])
    assert [ax.get_title() for ax in fig.axes[: len(stored["forget_sizes"])]] == [
        f"{n} forget people" for n in sorted(stored["forget_sizes"])
    ]
    gap = generalization.seen_minus_unseen(frame)
    for label, stored_gap in stored["usr_seen_minus_unseen"].items():
        assert gap[label]["mean"] == pytest.approx(stored_gap["mean"])


def test_scores_out_of_their_range_are_named():
    runs = pd.DataFrame(
        {"usr_unseen": [0.5, 1.0], "judge_inform_unseen": [1.0, 5.0], "retain_recognition_relative": [1.2, 0.9]}
    )
    check_score_ranges(runs)  # a relative recognition above 1 is allowed (the run names more than the original)
    with pytest.raises(ValueError, match="usr_unseen"):
        check_score_ranges(runs.assign(usr_unseen=[0.5, 1.5]))
    with pytest.raises(ValueError, match="judge_inform_unseen"):
        check_score_ranges(runs.assign(judge_inform_unseen=[0.0, 5.0]))
