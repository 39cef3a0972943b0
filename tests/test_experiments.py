"""Repeated runs for notebooks 06/07: conditions, scoring on seen/unseen photos, caching, seed summaries, fronts."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pubg_lib import experiments, prompts
from pubg_lib.config import ConfigError
from pubg_lib.experiments import Condition, Experiment, conditions
from pubg_lib.runs import method_settings
from pubg_lib.stats import pareto_front, summarise
from pubg_lib.unlearn import UnlearnConfig

CFG = UnlearnConfig(method="PUBG", steps=2, forget_batch=2, retain_batch=2)
SMALL = {"forget_batch": 4, "retain_batch": 4}


def test_pareto_front_by_hand():
    # (1, 1) is beaten by (2, 2); (3, 0) and (0, 3) and (2, 2) trade off; a duplicate of a front point stays on it
    x = [1, 2, 3, 0, 2]
    y = [1, 2, 0, 3, 2]
    assert pareto_front(x, y).tolist() == [False, True, True, True, True]
    assert pareto_front([0.5], [0.5]).tolist() == [True]
    with pytest.raises(ValueError, match="shape"):
        pareto_front([1, 2], [1])


def test_summarise_mean_sd_and_count():
    frame = pd.DataFrame({"label": ["a", "a", "a", "b"], "usr": [0.0, 0.5, 1.0, 0.25]})
    out = summarise(frame, "label", ["usr"]).set_index("label")
    assert out.loc["a", "usr_mean"] == pytest.approx(0.5)
    assert out.loc["a", "usr_sd"] == pytest.approx(0.5)  # sample s.d. of 0, 0.5, 1
    assert out.loc["a", "n"] == 3 and out.loc["b", "n"] == 1 and np.isnan(out.loc["b", "usr_sd"])
    with pytest.raises(KeyError, match="judge_inform"):
        summarise(frame, "label", ["judge_inform"])


def test_conditions_cross_labels_seeds_and_sizes():
    todo = conditions("g", {"x": CFG, "y": CFG}, seeds=[0, 1], n_forget=[1, 2])
    assert len(todo) == 8 and {(c.label, c.seed, c.n_forget) for c in todo} == {
        (label, s, n) for label in "xy" for s in (0, 1) for n in (1, 2)
    }
    assert todo[0].run_config.seed == todo[0].seed and todo[0].run_config.probe_every == 0
    with pytest.raises(KeyError, match="unknown instruction"):
        Condition("g", "x", CFG, instruction="be nice")
    with pytest.raises(ConfigError, match="n_forget"):
        Condition("g", "x", CFG, n_forget=0)


@pytest.fixture(scope="module")
def experiment(smoke_construction):
    return Experiment(smoke_construction, paraphrases=prompts.TRAINED_IDENTITY_QUERIES[1:2], progress=False)


def test_seed_zero_is_the_construction_split_and_sizes_are_checked(experiment, smoke_construction):
    assert experiment.split(2, 0) == smoke_construction.split(2)
    assert experiment.split(2, 1) != experiment.split(2, 0) or len(smoke_construction.kept) <= 2
    with pytest.raises(ConfigError, match="recognised people"):
        experiment.split(len(smoke_construction.kept), 0)


def test_scores_are_bounded_cached_and_deterministic(experiment, monkeypatch):
    cond = Condition("g", "PUBG", CFG, n_forget=2, seed=0)
    row = experiment.run_one(cond)
    for key in ("usr_seen", "usr_unseen", "degenerate_rate_unseen", "usr_paraphrase_0", "retain_recognition"):
        assert 0 <= row[key] <= 1, key
    assert 1 <= row["judge_inform_unseen"] <= 5
    assert row["n_seen_photos"] > 0 and row["n_unseen_photos"] > 0 and row["n_retain_photos"] > 0
    original = experiment.original(2, 0)
    assert row["retain_recognition_relative"] == pytest.approx(
        row["retain_recognition"] / original["retain_recognition"]
    )
    # a second call reads the cached scores: neither training nor generation runs again
    monkeypatch.setattr(experiments, "answer_table", lambda *a, **k: pytest.fail("scored twice"))
    monkeypatch.setattr(experiments, "cached_run", _load_only(experiments.cached_run))
    assert experiment.run_one(cond) == row


def _load_only(cached_run):
    def wrapper(lvlm, dataset, data, cfg, progress=True, **kwargs):
        from pubg_lib.runs import run_dir

        assert (run_dir(data, cfg) / "run.json").exists(), "the run should have been cached"
        return cached_run(lvlm, dataset, data, cfg, progress, **kwargs)

    return wrapper


def test_the_original_model_leaks_on_its_forget_set(experiment):
    """The scores separate the original model from an unlearned one only if the original leaks to begin with: the
    smoke world's filter keeps people the original names on their unseen photos, so it names its forget people on
    their photos and its retain people too."""
    original = experiment.original(2, 0)
    assert original["usr_seen"] <= 0.1 and original["usr_unseen"] <= 0.1, original
    assert original["retain_recognition"] >= 0.9 and original["degenerate_rate_seen"] == 0.0, original


def test_the_smoke_world_unlearns_as_the_paper_describes(experiment):
    """What the compendium is about, on the smoke world (seconds): PUBG at its stored learning rate, γ and schedule
    stops naming the forget people while the retain people keep their names and the answers stay informative; GA
    pushed (ten times its stored learning rate, held constant) forgets by degenerating. The margins are wide
    (measured: PUBG USR 0.94 on seen and 1.0 on unseen photos with retain kept 1.0; GA degenerate 1.0)."""
    settings = method_settings()  # data/settings/methods.json
    pubg = dataclasses.replace(settings["PUBG"], steps=30, **SMALL)
    row = experiment.run_one(Condition("behaviour", "PUBG", pubg, n_forget=2, seed=0))
    assert row["usr_seen"] >= 0.75 and row["usr_unseen"] >= 0.75, row
    assert row["retain_recognition_relative"] >= 0.75 and row["degenerate_rate_seen"] <= 0.25, row
    assert row["judge_inform_seen"] >= 3.5, row
    stored = settings["GA"]
    ga = dataclasses.replace(stored, steps=30, learning_rate=10 * stored.learning_rate, lr_schedule="constant", **SMALL)
    row = experiment.run_one(Condition("behaviour", "GA pushed", ga, n_forget=2, seed=0))
    assert row["usr_seen"] >= 0.75 and row["degenerate_rate_seen"] >= 0.5, row


def test_reference_quality_scores_the_teacher_answers(experiment):
    quality = experiment.reference_quality(2, 0, prompts.DEFAULT_INSTRUCTION)
    assert 0 <= quality["reference_name_free"] <= 1 and 0 <= quality["reference_attribute_accuracy"] <= 1


def test_a_greedy_reference_is_the_teachers_top_token(experiment):
    """Greedy decoding picks the teacher's most likely token at every step, so along a greedy reference the cached
    teacher distribution puts its top-1 on the reference token (up to padding-order numerics)."""
    agreement = experiment.teacher_agreement(2, 0, prompts.DEFAULT_INSTRUCTION)
    assert agreement["reference_is_teacher_top1"] >= 0.98
    for key in ("reference_name_positions", "teacher_top1_is_name"):
        assert 0 <= agreement[key] <= 1
