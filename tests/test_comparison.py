"""The main table and the paper's claims, on answer tables built by hand (no model): every rate and interval is
checked against what the rows say."""

import numpy as np
import pandas as pd
import pytest

from pubg_lib.comparison import main_table, paper_claims
from pubg_lib.stats import bootstrap_interval


def _answers(method, people, behaviours, draw=0, leaks=None, names=None, inform=3.0):
    leaks = leaks if leaks is not None else ["name" if b == "leak" else "" for b in behaviours]
    return pd.DataFrame(
        {
            "method": method,
            "draw": draw,
            "people": people,
            "behaviour": behaviours,
            "leaked_facts": leaks,
            "names_person": names if names is not None else [b == "leak" for b in behaviours],
            "names_other": [b == "hallucinated_identity" for b in behaviours],
            "answer": ["i am sorry , i cannot help ." if b == "refusal" else "an answer" for b in behaviours],
            "tfidf_similarity": [0.8 if b == "leak" else 0.05 for b in behaviours],
            "judge_inform": inform,
            "judge_hall": 1.0,
            "clip_score": 0.5,
        }
    )


def test_bootstrap_interval_covers_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = rng.random(20) < 0.9
    large = rng.random(2000) < 0.9
    lo, hi = bootstrap_interval(small)
    assert lo <= small.mean() <= hi
    lo2, hi2 = bootstrap_interval(large)
    assert (hi2 - lo2) < (hi - lo) / 4
    assert bootstrap_interval([1.0] * 10) == (1.0, 1.0)
    assert np.isnan(bootstrap_interval([])[0])


def test_bootstrap_over_draws_is_wider_when_draws_disagree():
    values = np.r_[np.ones(50), np.zeros(50)]
    groups = np.r_[np.zeros(50), np.ones(50)]  # draw 0 all ones, draw 1 all zeros
    lo, hi = bootstrap_interval(values, groups=groups)
    lo_flat, hi_flat = bootstrap_interval(values)
    assert hi - lo > hi_flat - lo_flat


def test_main_table_rates_match_the_rows():
    answers = pd.concat(
        [
            _answers("original", "forget", ["leak"] * 4),
            _answers("original", "retain", ["leak"] * 4, names=[True, True, True, False]),
            _answers("REJECT", "forget", ["refusal", "refusal", "refusal", "grounded_description"]),
            _answers("REJECT", "retain", ["refusal", "leak", "leak", "leak"], names=[False, True, True, False]),
            _answers("REJECT", "stranger", ["refusal", "grounded_description"]),
        ],
        ignore_index=True,
    )
    extra = _answers("GA lr=0.003", "forget", ["degenerate"] * 2)
    t = main_table(pd.concat([answers, extra], ignore_index=True), reached={"REJECT": True}).set_index("method")
    assert t.loc["REJECT", "usr"] == 1.0 and t.loc["original", "usr"] == 0.0
    assert t.loc["REJECT", "refusal_rate"] == 0.75
    assert t.loc["REJECT", "retain_refusal_rate"] == 0.25 and t.loc["REJECT", "stranger_refusal_rate"] == 0.5
    assert t.loc["REJECT", "retain_recognition_relative"] == pytest.approx((2 / 4) / (3 / 4))
    assert t.loc["REJECT", "usr_ci_low"] <= t.loc["REJECT", "usr"] <= t.loc["REJECT", "usr_ci_high"]
    assert t.loc["REJECT", "reached_target"] is True or t.loc["REJECT", "reached_target"] == True  # noqa: E712
    assert t.loc["REJECT", "n_forget_answers"] == 4
    # a row the sweep never chose (the original, an extra run) says nothing about the target, rather than "no"
    assert t.loc["original", "reached_target"] is None and t.loc["GA lr=0.003", "reached_target"] is None


def test_behaviour_shares_are_tidy_and_drawn_as_stacked_bars_that_sum_to_one():
    import matplotlib

    from pubg_lib import plots
    from pubg_lib.comparison import behaviour_shares
    from pubg_lib.metrics.behaviour import BEHAVIOURS

    matplotlib.use("Agg")
    answers = pd.concat(
        [
            _answers("original", "forget", ["leak"] * 4),
            _answers("original", "retain", ["leak"] * 4),
            _answers("GA", "forget", ["degenerate", "degenerate", "degenerate", "leak"]),
            _answers("GA", "retain", ["degenerate", "leak", "leak", "leak"]),
            _answers("GA", "stranger", ["refusal"]),  # strangers are not counted
        ],
        ignore_index=True,
    )
    shares = behaviour_shares(answers)
    assert len(shares) == 2 * 2 * len(BEHAVIOURS) and set(shares["n"]) == {4}
    assert shares.groupby(["people", "method"])["share"].sum().tolist() == pytest.approx([1.0] * 4)
    ga = shares[(shares["method"] == "GA") & (shares["people"] == "forget")].set_index("behaviour")["share"]
    assert ga["degenerate"] == 0.75 and ga["leak"] == 0.25 and ga["refusal"] == 0.0
    fig = plots.behaviour_classes(shares)
    assert "GA mostly degenerate" in fig._suptitle.get_text()
    retain_legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "names the retain person (right)" in retain_legend and "leak (names the forget person)" not in retain_legend


def test_a_main_table_that_breaks_its_invariants_is_named():
    from pubg_lib.comparison import check_main_table

    answers = pd.concat(
        [_answers("original", p, ["leak"] * 4) for p in ("forget", "retain")]
        + [_answers("PUBG", p, ["grounded_description"] * 4, draw=d) for p in ("forget", "retain") for d in (0, 1)],
        ignore_index=True,
    )
    table = main_table(answers)
    check_main_table(table[table["method"] == "PUBG"], n_draws=2)
    with pytest.raises(ValueError, match="not scored on all 2 draws"):
        check_main_table(table, n_draws=2)  # the original here has one draw
    broken = table.assign(usr=table["usr"] + 2)
    with pytest.raises(ValueError, match="'usr'.*usr outside its interval"):
        check_main_table(broken[broken["method"] == "PUBG"], n_draws=2)
    with pytest.raises(ValueError, match="judge_inform"):
        check_main_table(table.assign(judge_inform=0.0)[table["method"] == "PUBG"], n_draws=2)


def test_claims_follow_the_table():
    answers = pd.concat(
        [
            _answers("original", "forget", ["leak"] * 4),
            _answers("original", "retain", ["leak"] * 4),
            _answers("GA", "forget", ["degenerate"] * 4, inform=1.0),
            _answers("GA", "retain", ["degenerate"] * 4),
            _answers("NPO", "forget", ["hallucinated_identity"] * 2 + ["grounded_description"] * 2, inform=2.0),
            _answers("NPO", "retain", ["leak"] * 4),
            _answers("REJECT", "forget", ["refusal"] * 4, inform=1.0),
            _answers("REJECT", "retain", ["leak"] * 4),
            _answers("PUBG", "forget", ["grounded_description"] * 4, inform=4.5),
            _answers("PUBG", "retain", ["leak"] * 4),
        ],
        ignore_index=True,
    )
    reached = dict.fromkeys(("GA", "NPO", "REJECT", "PUBG"), True)
    claims = paper_claims(main_table(answers, reached=reached))
    assert claims["GA degenerates (degenerate rate >= 0.5)"]["holds"]
    assert claims["REJECT refuses (refusal rate >= 0.5)"]["holds"]
    assert claims["NPO or RANDOM hallucinate identities (rate >= 0.1)"]["holds"]
    assert claims["PUBG is the most informative method that forgets"]["holds"]
    assert claims["PUBG keeps retain people (relative recognition >= 0.9)"]["holds"]
    # the same table with PUBG uninformative: the claim must fail, not be assumed
    answers.loc[answers["method"] == "PUBG", "judge_inform"] = 1.0
    assert not paper_claims(main_table(answers, reached=reached))["PUBG is the most informative method that forgets"][
        "holds"
    ]
    # grounding is claimed only where it was measured: without CLIP scores the claim is absent, not failed
    grounded = "PUBG is the best grounded method that forgets (CLIP score)"
    assert grounded in claims
    assert grounded not in paper_claims(main_table(answers.drop(columns="clip_score"), reached=reached))


def test_compare_scores_each_draws_forget_retain_and_stranger_test_photos_once_per_method(smoke_construction):
    """On the smoke world: every method's answers on each draw are the draw's forget people's test photos, its
    retain people's, and strangers' (never-seen people outside the draw's split, even when the smoke filter keeps
    a never-seen person); the original model is scored alongside."""
    from pubg_lib.comparison import compare, draw_data
    from pubg_lib.unlearn import UnlearnConfig

    con = smoke_construction
    cfg = UnlearnConfig(method="GA", steps=1, forget_batch=2, retain_batch=2)
    answers = compare(con, {"GA": cfg}, draws=(0, 1), n_forget=2)
    dataset = con.dataset
    never_seen = set(dataset.people.loc[dataset.people["role"] == "never_seen", "person_id"])
    assert set(answers["method"]) == {"original", "GA"}
    for draw in (0, 1):
        split, _ = draw_data(con, draw, 2)
        here = answers[answers["draw"] == draw]
        for method, rows in here.groupby("method"):
            by = {p: set(g["photo_id"]) for p, g in rows.groupby("people")}
            assert by["forget"] == set(dataset.photos_of(split.forget, ["test"])["photo_id"]), method
            assert by["retain"] == set(dataset.photos_of(split.retain, ["test"])["photo_id"]), method
            strangers = never_seen - set(split.forget) - set(split.retain)
            assert by.get("stranger", set()) == set(dataset.photos_of(sorted(strangers), ["test"])["photo_id"])
            assert not rows.duplicated(["people", "photo_id"]).any()
        assert set(here["photo_split"]) == {"test"}


def test_a_rate_by_draw_is_the_mean_over_that_draws_forget_answers_only():
    from pubg_lib.comparison import by_draw

    answers = pd.concat(
        [
            _answers("PUBG", "forget", ["grounded_description"] * 3 + ["leak"], draw=0),
            _answers("PUBG", "forget", ["leak", "leak"], draw=1),
            _answers("PUBG", "retain", ["leak"] * 5, draw=1),  # retain answers do not count
            _answers("GA", "forget", ["degenerate"] * 2, draw=0),
        ],
        ignore_index=True,
    )
    table = by_draw(answers)
    assert list(table.index) == ["PUBG", "GA"] and list(table.columns) == [0, 1]
    assert table.loc["PUBG", 0] == 0.75 and table.loc["PUBG", 1] == 0.0 and table.loc["GA", 0] == 1.0
    assert np.isnan(table.loc["GA", 1])
    assert by_draw(answers, "degenerate_rate").loc["GA", 0] == 1.0


def test_full_forgetting_takes_the_highest_val_usr_then_the_least_damage_then_the_fewest_steps():
    from pubg_lib.comparison import choose_full_forgetting

    trial = pd.DataFrame(
        {
            "step": [30, 60, 90, 120],
            "usr": [0.9, 1.0, 1.0, 1.0],
            "retain_recognition_relative": [1.0, 0.6, 0.8, 0.8],
            "informativeness": [5.0, 4.0, 3.0, 3.0],
        }
    )
    assert choose_full_forgetting(trial)["step"] == 90  # USR 1.0 first; then retain 0.8; then fewer steps
    trial.loc[3, "informativeness"] = 4.0
    assert choose_full_forgetting(trial)["step"] == 120  # informativeness breaks the retain tie before steps
    trial["usr"] = [np.nan, 0.5, 0.7, 0.6]
    assert choose_full_forgetting(trial)["step"] == 90  # an unscored checkpoint is never the best


def test_calibrated_steps_are_a_checkpoint_of_the_draws_own_val_trial_and_train_to_the_same_model(
    smoke_construction,
):
    """Each draw's steps come from a trial scored on that draw's val photos (never a test photo); the calibrated
    setting, trained for those steps, is the trial at that checkpoint (constant learning rate, seeded by the
    draw): scored on the same val photos it gives the same USR."""
    from dataclasses import replace

    from pubg_lib import sweep
    from pubg_lib.comparison import calibrate_draws, calibrate_steps, draw_data, draw_runs
    from pubg_lib.io import read_json
    from pubg_lib.unlearn import UnlearnConfig

    con = smoke_construction
    settings = {"GA": UnlearnConfig(method="GA", steps=1, learning_rate=3e-3, forget_batch=2, retain_batch=2)}
    for draw in (0, 1):
        calibrated, table = calibrate_steps(con, settings, draw, 2, max_steps=4, checkpoints=2)
        cfg, row = calibrated["GA"], table.iloc[0]
        assert cfg.steps == row["steps"] in (2, 4) and cfg.seed == draw and cfg.lr_schedule == "constant"
        assert row["reached"] == (row["val_usr"] >= sweep.MIN_USR)
        split, data = draw_data(con, draw, 2)
        forget_ids, retain_ids = sweep.selection_photos(con.dataset, split)
        record = read_json(sweep.trial_path(data, replace(cfg, steps=4)))
        assert record["forget_photos"] == forget_ids and record["retain_photos"] == retain_ids
        test_ids = set(con.dataset.photos.loc[con.dataset.photos["photo_split"] == "test", "photo_id"])
        assert not (set(forget_ids) | set(retain_ids)) & test_ids
        at_step = {r["step"]: r for r in record["rows"]}
        assert row["val_usr"] == max(r["usr"] for r in at_step.values())
        _, _, runs = draw_runs(con, calibrated, draw, 2)
        again = sweep.score(runs["GA"].lvlm, con.dataset, forget_ids, retain_ids, 1.0)
        for score in ("usr", "informativeness", "retain_recognition", "degenerate"):
            assert again[score] == pytest.approx(at_step[cfg.steps][score]), score
    # over several draws (notebook 05 and `make check-world`): the same settings, and "reached" on every draw
    per_draw, steps, reached = calibrate_draws(con, settings, (0, 1), 2, max_steps=4, checkpoints=2)
    for draw in (0, 1):
        assert per_draw[draw] == calibrate_steps(con, settings, draw, 2, max_steps=4, checkpoints=2)[0]
    assert list(steps["draw"]) == [0, 1] and reached == {"GA": bool(steps["reached"].all())}


def test_a_notebook_asserts_only_the_claims_that_hold_on_every_world(tmp_path, monkeypatch):
    from pubg_lib import robustness

    stored = tmp_path / "world_robustness.json"
    stored.write_text('{"claims_on_every_world": {"A": true, "B": false}}')
    monkeypatch.setattr(robustness, "results_path", lambda smoke: stored)
    claims = {"A": {"holds": True}, "B": {"holds": False}, "C": {"holds": False}}
    assert robustness.check_claims_held(claims) == ["A"]  # B and C are reported, not asserted
    with pytest.raises(robustness.ClaimError, match="'A'"):
        robustness.check_claims_held({**claims, "A": {"holds": False}})
    stored.unlink()
    assert robustness.check_claims_held({"A": {"holds": False}}) == []  # check-world has not run: nothing asserted


def test_a_method_that_misses_climbs_the_learning_rate_ladder_to_its_first_reaching_rung(monkeypatch):
    """On a draw where the stored rate leaves a val photo unforgotten, the next rung is tried; the first rung that
    forgets every val photo is kept, else the lowest that reached the target (lower rates are less damaging), and a
    method that reaches nowhere keeps its best val USR over the rungs."""
    from pubg_lib import comparison, sweep
    from pubg_lib.unlearn import UnlearnConfig

    # val USR by (method, rate): GA forgets fully at once; NPO at the second rung; GD never reaches the target;
    # RANDOM reaches 0.95 at the first rung and 1.0 nowhere, so its first rung is kept
    val = {
        ("GA", 1e-3): 1.0,
        ("NPO", 1e-3): 0.8,
        ("NPO", 3e-3): 1.0,
        ("GD", 1e-3): 0.5,
        ("GD", 3e-3): 0.55,
        ("GD", 1e-2): 0.6,
        ("RANDOM", 1e-3): 0.95,
        ("RANDOM", 3e-3): 0.95,
        ("RANDOM", 1e-2): 0.9,
    }
    tried = []

    def trial(lvlm, dataset, data, cfg, forget_ids, retain_ids, original, checkpoints):
        tried.append((cfg.method, cfg.learning_rate))
        usr = val[(cfg.method, round(cfg.learning_rate, 6))]
        return pd.DataFrame(
            {"step": [60, 120], "usr": [usr - 0.1, usr], "retain_recognition_relative": [1.0, 0.9]}
        ).assign(informativeness=np.nan)

    monkeypatch.setattr(comparison, "draw_data", lambda con, draw, n: (None, None))
    monkeypatch.setattr(sweep, "selection_photos", lambda dataset, split: ([], []))
    monkeypatch.setattr(sweep, "score", lambda *a, **k: {"retain_recognition": 1.0})
    monkeypatch.setattr(sweep, "run_trial", trial)
    con = type("Con", (), {"lvlm": None, "dataset": None})()
    settings = {m: UnlearnConfig(method=m, learning_rate=1e-3) for m in ("GA", "NPO", "GD", "RANDOM")}
    calibrated, table = comparison.calibrate_steps(con, settings, 0, 5)
    table = table.set_index("method")
    assert [(m, round(lr, 6)) for m, lr in tried] == list(val)  # in turn, each method until it forgets fully
    assert table.loc["GA", "rungs"] == 1 and table.loc["NPO", "rungs"] == 2 and table.loc["GD", "rungs"] == 3
    assert table.loc["RANDOM", "rungs"] == 3 and calibrated["RANDOM"].learning_rate == pytest.approx(1e-3)
    assert table.loc["RANDOM", "reached"] and table.loc["RANDOM", "val_usr"] == pytest.approx(0.95)
    assert calibrated["NPO"].learning_rate == pytest.approx(3e-3) and table.loc["NPO", "reached"]
    assert calibrated["NPO"].steps == 120 and calibrated["NPO"].seed == 0
    # GD never reaches: its best val USR is on the highest rung (0.6), and it says so
    assert not table.loc["GD", "reached"] and calibrated["GD"].learning_rate == pytest.approx(1e-2)
    assert table.loc["GD", "val_usr"] == pytest.approx(0.6)
