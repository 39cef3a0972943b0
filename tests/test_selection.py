"""Which photos and people each step uses, and how choices are made at their boundaries."""

import numpy as np
import pandas as pd
import pytest

from pubg_lib import prompts, sweep
from pubg_lib.entities import make_splits, recognition_filter
from pubg_lib.metrics.leakage import leaked_facts
from pubg_lib.reference import build_unlearning_data


@pytest.fixture(scope="module")
def data(smoke_construction):
    con = smoke_construction
    return build_unlearning_data(con.lvlm, con.dataset, con.split(2), model_id=str(con.model_dir), progress=False)


def test_unlearning_trains_on_seen_photos_of_the_forget_and_retain_people(smoke_construction, data):
    con = smoke_construction
    split = con.split(2)
    photos = con.dataset.photos.set_index("photo_id")
    assert set(photos.loc[data.forget["photo_id"], "photo_split"]) == {"seen"}
    assert set(photos.loc[data.forget["photo_id"], "person_id"]) == set(split.forget)
    assert set(photos.loc[data.retain["photo_id"], "photo_split"]) == {"seen"}
    assert set(photos.loc[data.retain["photo_id"], "person_id"]) == set(split.retain)
    assert len(data.forget) == len(con.dataset.photos_of(split.forget, ["seen"]))


def test_random_substitutes_are_other_people_and_share_no_private_fact(smoke_construction, data):
    con = smoke_construction
    split = con.split(2)
    others = set(con.dataset.people["person_id"]) - set(split.forget) - set(split.retain)
    for person_id, answer in zip(data.forget["person_id"], data.forget["random_answer"]):
        person = con.dataset.person(person_id)
        assert leaked_facts(answer, person) == [], (person_id, answer)
        named = [p["person_id"] for p in con.dataset.people.to_dict("records") if leaked_facts(answer, p, ("name",))]
        assert named and not set(named) & set(split.forget), answer  # never a forget person
        if others:  # people the model does not know are preferred: a retain person's identity is not overwritten
            assert set(named) <= others, answer


def test_the_reference_answers_come_from_the_instructed_query(data):
    assert (data.forget["teacher_query"] == prompts.instructed(prompts.PAPER_QUERY)).all()
    assert (data.forget["query"] == prompts.PAPER_QUERY).all()


def test_experiments_score_unseen_test_photos_and_retain_test_photos(smoke_construction):
    from pubg_lib.experiments import Experiment

    con = smoke_construction
    experiment = Experiment(con, progress=False)
    split = con.split(2)
    ids = experiment.photos(split)
    photos = con.dataset.photos.set_index("photo_id")
    assert set(photos.loc[ids["seen"], "photo_split"]) == {"seen"}
    assert set(photos.loc[ids["unseen"], "photo_split"]) == {"test"}
    assert set(photos.loc[ids["retain"], "photo_split"]) == {"test"}
    assert set(photos.loc[ids["retain"], "person_id"]) <= set(split.retain)
    assert set(photos.loc[ids["unseen"], "person_id"]) <= set(split.forget)


def _trials(rows):
    cols = ["method", "trial", "final", "usr", "retain_recognition_relative", "informativeness", "cfg_steps"]
    return pd.DataFrame(rows, columns=cols)


def test_sweep_ties_break_by_retain_then_fewer_steps():
    chosen = sweep.choose(
        _trials(
            [
                ("PUBG", "a", True, 1.0, 0.92, 0.9, 60),
                ("PUBG", "b", True, 1.0, 0.95, 0.9, 60),  # same informativeness, better retain: chosen over a
                ("PUBG", "c", True, 1.0, 0.95, 0.9, 30),  # ... and the same retain in fewer steps: chosen over b
            ]
        )
    )
    assert chosen.loc["PUBG", "trial"] == "c"


def test_sweep_thresholds_are_inclusive_and_nan_is_never_feasible():
    chosen = sweep.choose(
        _trials(
            [
                ("GD", "at", True, 0.95, 0.90, 0.5, 30),  # exactly at both thresholds: feasible
                ("GD", "nan", True, np.nan, 1.0, 0.99, 30),  # unknown USR is not feasible, however informative
            ]
        )
    )
    assert chosen.loc["GD", "trial"] == "at" and chosen.loc["GD", "rule"].startswith("feasible")
    none = sweep.choose(_trials([("NPO", "x", True, np.nan, np.nan, 0.9, 30), ("NPO", "y", True, 0.2, 0.3, 0.1, 30)]))
    assert none.loc["NPO", "trial"] == "y"  # NaN counts as 0 in the trade-off


def test_recognition_filter_keeps_a_person_exactly_at_the_threshold():
    table = pd.DataFrame(
        [("a1", "a", True, True, "a"), ("a2", "a", True, False, ""), ("b1", "b", True, False, "")],
        columns=["photo_id", "person_id", "trained", "named_correctly", "named_ids"],
    )
    out = recognition_filter(table, min_share=0.5).set_index("person_id")
    assert out.loc["a", "kept"] and not out.loc["b", "kept"]
    assert not recognition_filter(table, min_share=0.51).set_index("person_id").loc["a", "kept"]


def test_forget_sets_draw_only_recognised_people():
    kept = [f"k{i}" for i in range(12)]
    splits = make_splits(kept, (2, 5), seed=1)
    assert set(splits[5].forget) | set(splits[5].retain) == set(kept)


def test_the_name_position_is_where_the_identity_answer_says_the_first_name(smoke_construction):
    from pubg_lib.reference import name_positions

    con = smoke_construction
    ids = con.dataset.photos_of(con.split(2).forget, ["seen"])["photo_id"].tolist()
    found = name_positions(con.lvlm, con.dataset, ids, prompts.DEFAULT_INSTRUCTION)
    assert found and {at.photo_id for at in found} <= set(ids)
    tok = con.lvlm.tokenizer
    for at in found:
        answer = tok(con.dataset.identity_answer(at.photo_id), add_special_tokens=False)["input_ids"]
        first = con.dataset.person(con.dataset.photo(at.photo_id)["person_id"])["first_name"]
        assert answer[at.position] == at.name_id == tok.convert_tokens_to_ids(first)
        assert at.plain.shape == at.instructed.shape and at.plain.shape[0] >= len(answer)
        for logp in (at.plain[at.position], at.instructed[at.position]):  # full distributions at that position
            assert logp.exp().sum().item() == pytest.approx(1, abs=1e-4)
    # the original model, trained on these photos with the names of the people it knows, is sure of those names
    # (the smoke fixture keeps every person, the anonymous ones too: the model never heard their names)
    known = [at for at in found if con.dataset.person(con.dataset.photo(at.photo_id)["person_id"])["role"] == "known"]
    assert known and min(float(at.plain[at.position, at.name_id].exp()) for at in known) > 0.5
