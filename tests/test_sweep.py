"""The specificity sweep: equal budgets, val-only selection, resumable trials, one stated selection rule."""

import json

import pandas as pd
import pytest

from pubg_lib import methods, sweep
from pubg_lib.reference import build_unlearning_data
from pubg_lib.unlearn import UnlearnConfig


@pytest.fixture(scope="module")
def data(smoke_construction):
    con = smoke_construction
    return build_unlearning_data(con.lvlm, con.dataset, con.split(2), model_id=str(con.model_dir), progress=False)


def test_every_method_gets_the_same_number_of_trials():
    base = UnlearnConfig()
    counts = {m: len(sweep.trial_configs(m, base, 8)) for m in methods.METHODS}
    assert set(counts.values()) == {8}
    for m in methods.METHODS:  # distinct settings, all from the method's own grid
        cfgs = sweep.trial_configs(m, base, 8)
        assert len({(c.learning_rate, c.steps, c.gamma) for c in cfgs}) == 8
    with pytest.raises(ValueError, match="fewer than"):
        sweep.trial_configs("PUBG", base, 9)


def test_selection_never_uses_a_test_photo(smoke_construction, data):
    con = smoke_construction
    split = con.split(2)
    forget, retain = sweep.selection_photos(con.dataset, split)
    splits = set(con.dataset.photos.set_index("photo_id").loc[forget + retain, "photo_split"])
    assert splits == {"val"}
    cfg = UnlearnConfig(method="PUBG", steps=2, forget_batch=2, retain_batch=2)
    sweep.run_trial(con.lvlm, con.dataset, data, cfg, forget, retain, 1.0, checkpoints=1)
    record = json.loads(sweep.trial_path(data, cfg).read_text())
    used = set(record["forget_photos"]) | set(record["retain_photos"])
    test_photos = set(con.dataset.photos.loc[con.dataset.photos["photo_split"] == "test", "photo_id"])
    assert used and not used & test_photos


def test_finished_trials_are_loaded_not_retrained(smoke_construction, data, monkeypatch):
    con = smoke_construction
    forget, retain = sweep.selection_photos(con.dataset, con.split(2))
    cfg = UnlearnConfig(method="GA", steps=2, forget_batch=2, retain_batch=2, seed=5)
    first = sweep.run_trial(con.lvlm, con.dataset, data, cfg, forget, retain, 1.0, checkpoints=2)
    assert list(first["step"]) == [1, 2]

    def boom(*a, **k):
        raise AssertionError("a cached trial was trained again")

    monkeypatch.setattr(sweep, "unlearn", boom)
    again = sweep.run_trial(con.lvlm, con.dataset, data, cfg, forget, retain, 1.0, checkpoints=2)
    pd.testing.assert_frame_equal(first.reset_index(drop=True), again.reset_index(drop=True), check_dtype=False)


def _trials(rows):
    cols = ["method", "trial", "final", "usr", "retain_recognition_relative", "informativeness", "cfg_steps"]
    return pd.DataFrame(rows, columns=cols)


def test_choose_prefers_the_most_informative_feasible_trial():
    t = _trials(
        [
            ("PUBG", "a", True, 1.0, 0.95, 0.80, 30),
            ("PUBG", "b", True, 0.96, 0.91, 0.90, 60),  # feasible and more informative: chosen
            ("PUBG", "c", True, 0.50, 1.00, 0.99, 30),  # most informative but leaks
            ("PUBG", "b", False, 0.2, 0.99, 0.99, 30),  # a checkpoint, not a final: ignored
            ("GA", "d", True, 0.90, 0.60, 0.90, 30),
            ("GA", "e", True, 1.00, 0.00, 0.00, 30),  # none feasible: best USR + retain is d (1.5 > 1.0)
        ]
    )
    chosen = sweep.choose(t)
    assert chosen.loc["PUBG", "trial"] == "b" and chosen.loc["PUBG", "rule"].startswith("feasible")
    assert chosen.loc["GA", "trial"] == "d" and chosen.loc["GA", "rule"].startswith("none feasible")


def test_write_settings_is_idempotent(tmp_path):
    path = tmp_path / "methods.json"
    path.write_text(
        json.dumps({"version": 3, "note": "x", "common": {"steps": 30, "gamma": 8.0}, "methods": {"PUBG": {}}})
    )
    cfg = {"method": "PUBG", "learning_rate": 0.003, "steps": 60, "gamma": 8.0, "lam": 1.0, "retain_loss": "nll"}
    sweep.write_settings({"PUBG": cfg}, note="chosen", path=path)
    first = json.loads(path.read_text())
    assert first["version"] == 4 and first["methods"]["PUBG"] == {
        "learning_rate": 0.003,
        "steps": 60,
        "lam": 1.0,
        "retain_loss": "nll",
    }
    sweep.write_settings({"PUBG": cfg}, note="chosen", path=path)
    assert json.loads(path.read_text()) == first


def test_a_custom_grid_may_name_any_setting_and_drops_what_a_method_does_not_use():
    grid = {
        "learning_rate": [1e-3, 3e-3],
        "lam": [1.0, 3.0],
        "retain_loss": ["nll", "kl"],
        "lora_targets": [["q_proj", "v_proj"], ["q_proj", "k_proj", "v_proj", "o_proj"]],
    }
    assert set(sweep.method_grid("PUBG", grid)) == set(grid)
    assert set(sweep.method_grid("GD", grid)) == {"learning_rate", "retain_loss", "lora_targets"}
    assert set(sweep.method_grid("GA", grid)) == {"learning_rate", "lora_targets"}
    cfgs = sweep.trial_configs("PUBG", UnlearnConfig(), 16, grid=grid)
    assert {c.lora_targets for c in cfgs} == {("q_proj", "v_proj"), ("q_proj", "k_proj", "v_proj", "o_proj")}
    with pytest.raises(KeyError, match="learning_rat"):
        sweep.method_grid("PUBG", {"learning_rat": [1e-3]})
