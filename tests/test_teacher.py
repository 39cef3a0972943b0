"""Notebook 02's measures of the teacher: a reference that names somebody is caught, the summary shares are the
means they claim, and the name position is read where the true first name is, under both prompts."""

import numpy as np
import pandas as pd
import pytest

from pubg_lib import prompts, teacher


def test_judged_references_catch_a_name_and_score_attributes(smoke_construction):
    con = smoke_construction
    photos = con.dataset.photos_of(con.kept[:2], ["seen"])["photo_id"].tolist()[:2]
    answers = [con.dataset.identity_answer(photos[0]), con.dataset.description(photos[1])]
    forget = pd.DataFrame({"photo_id": photos, "reference_answer": answers, "private_leaks": [True, True]})
    judged = teacher.judge_references(forget, con.dataset)
    assert judged["reference_names_someone"].tolist() == [True, False]  # the identity answer names the person
    assert judged["reference_attribute_accuracy"].iloc[1] == pytest.approx(1.0)  # the true description
    quality = teacher.reference_quality(judged)
    assert quality == pytest.approx(
        {"private_leak_share": 1.0, "reference_name_free_share": 0.5, "reference_attribute_accuracy": 1.0}, abs=0.25
    )
    assert quality["reference_name_free_share"] == 0.5


def test_name_position_table_reads_the_true_first_name_under_both_prompts(smoke_construction):
    con = smoke_construction
    photos = con.dataset.photos_of(con.kept[:1], ["seen"])["photo_id"].tolist()[:2]
    table = teacher.name_position_table(con.lvlm, con.dataset, photos, prompts.DEFAULT_INSTRUCTION)
    assert set(table["prompt"]) == {"q", "q⊕c"} and set(table["where"]) == {"position 0", "first-name position"}
    assert len(table) == 4 * len(photos)
    at_name = table[table["where"] == "first-name position"]
    assert table.loc[table["where"] == "position 0", "p_name"].isna().all()
    assert at_name["p_name"].between(0, 1).all() and (table["entropy_nats"] >= 0).all()
    plain = at_name[at_name["prompt"] == "q"]["p_name"].to_numpy()
    assert np.all(plain > 0.5)  # the original names its own people on its training photos
