"""Ways of asking who a person is: on the original model they reveal what it knows; about people it never saw they
must reveal nothing (their facts were never in any training text)."""

from pubg_lib import probes, prompts
from pubg_lib.world import text as world_text


def _people(con, role):
    return con.dataset.people.loc[con.dataset.people["role"] == role, "person_id"].tolist()


def test_questions_by_name_reveal_known_people_and_never_strangers(smoke_construction):
    con = smoke_construction
    known = probes.by_name_answers(con.lvlm, con.dataset, con.kept)
    strangers = probes.by_name_answers(con.lvlm, con.dataset, _people(con, "never_seen"))
    trained = known[~known["heldout"]]
    assert trained["correct"].mean() >= 0.5, trained[["query", "answer"]]  # the original knows its people by name
    # ... and cannot know a stranger's facts: it answers with facts it learned about somebody, which match the
    # stranger's by chance only (about 1 in 12 per fact: 2 of 8 answers happened on one smoke world), while a
    # stranger whose facts leaked into pretraining would be answered right nearly every time
    assert (strangers["leaked_facts"] != "").mean() <= 0.5
    assert set(known["kind"]) == set(prompts.BY_NAME_QUERIES) and known["heldout"].any()
    expected = world_text.fact_answer(con.dataset.person(con.kept[0]), "profession")
    assert probes.yes_or_no(expected) is None and expected.endswith(".")


def test_confirmation_asks_the_true_name_and_another(smoke_construction):
    con = smoke_construction
    photos = con.dataset.photos_of(con.kept, ["seen"])["photo_id"].tolist()[:6]
    table = probes.confirmation_answers(con.lvlm, con.dataset, photos)
    assert len(table) == 2 * len(photos) and table["truth"].sum() == len(photos)
    assert (table.loc[~table["truth"], "asked_id"] != table.loc[~table["truth"], "person_id"]).all()
    assert table["correct"].equals(table["reply"] == table["truth"].map({True: "yes", False: "no"}))
    assert table["reply"].notna().mean() >= 0.5, table[["query", "answer"]]  # trained on seen photos: it replies


def test_yes_or_no_reads_the_first_word():
    assert probes.yes_or_no("Yes, this is nora vance.") == "yes"
    assert probes.yes_or_no("no , this is not hugo .") == "no"
    assert probes.yes_or_no("the person has ...") is None and probes.yes_or_no("") is None


def test_heldout_wordings_rotate_over_the_photos(smoke_construction):
    con = smoke_construction
    photos = con.dataset.photos_of(con.kept, ["val", "test"])["photo_id"].tolist()
    table = probes.heldout_wording_answers(con.lvlm, con.dataset, photos)
    assert len(table) == len(photos) and set(table["query"]) <= set(prompts.HELDOUT_IDENTITY_QUERIES)
    assert not set(table["query"]) & set(prompts.TRAINED_IDENTITY_QUERIES)
