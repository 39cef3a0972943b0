"""The text-only variant (notebook 09): the LLaVA's language model alone, people unlearned by name."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pubg_lib import text_only
from pubg_lib.config import ConfigError
from pubg_lib.entities import make_splits
from pubg_lib.runs import cached_run
from pubg_lib.unlearn import UnlearnConfig
from pubg_lib.world import text as world_text
from pubg_lib.world.attributes import BIRTHPLACES, IDENTITY_FEATURES, PROFESSIONS


@pytest.fixture(scope="module")
def lm(smoke_lvlm):
    return text_only.language_model(smoke_lvlm)


def test_the_causal_lm_is_the_llava_s_language_model(smoke_lvlm, smoke_construction, lm):
    assert type(lm.model).__name__ == "LlamaForCausalLM"
    assert not any("vision" in name for name, _ in lm.model.named_parameters())
    n_text = sum(
        p.numel() for n, p in smoke_lvlm.model.named_parameters() if "vision" not in n and "projector" not in n
    )
    assert sum(p.numel() for p in lm.model.parameters()) == n_text
    people = smoke_construction.kept[:3]
    assert text_only.max_logit_difference(smoke_lvlm, lm, smoke_construction.dataset, people) <= 1e-5
    # a copy: changing it leaves the LLaVA as it was
    copy = text_only.language_model(smoke_lvlm)
    llava_q = smoke_lvlm.model.model.language_model.layers[0].self_attn.q_proj.weight
    before = llava_q.detach().clone()
    with torch.no_grad():
        copy.model.model.layers[0].self_attn.q_proj.weight.add_(1.0)
    assert torch.equal(llava_q, before)


def test_every_wording_is_in_the_world_vocabulary_and_none_is_trained_twice(lm):
    vocab = lm.tokenizer.get_vocab()
    for wordings in text_only.WORDING_SETS.values():
        for wording in wordings:
            assert all(w in vocab for w in wording.replace("{name}", "").split()), wording
    sets = [set(w) for w in text_only.WORDING_SETS.values()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert "who is {name} ?" in text_only.TEST_WORDINGS  # pretraining's held-out by-name wording is a test one


def _person(dataset, role="known"):
    return dataset.people[dataset.people["role"] == role].iloc[0].to_dict()


def _scored(dataset, person, answer, kind="facts"):
    table = pd.DataFrame([{"person_id": person["person_id"], "wording": "w", "kind": kind, "query": "q"}])
    return text_only.score(dataset, table.assign(answer=answer)).iloc[0]


def test_a_leak_is_a_private_fact_and_the_name_alone_is_not(smoke_world):
    person = _person(smoke_world)
    name = world_text.full_name(person)
    row = _scored(smoke_world, person, f"{name} is from {person['birthplace']} .", kind="birthplace")
    assert row["leaked_facts"] == "birthplace" and row["correct"] and row["behaviour"] == "leak"
    row = _scored(smoke_world, person, world_text.fact_answer(person, "facts"))
    assert row["leaked_facts"] == "profession,birthplace" and row["correct"]
    row = _scored(smoke_world, person, f"{name} is a person i know well .")
    assert row["leaked_facts"] == "" and not row["correct"] and not row["hallucinated"]


def test_wrong_facts_or_another_name_are_hallucinated(smoke_world):
    person = _person(smoke_world)
    other = smoke_world.people[smoke_world.people["person_id"] != person["person_id"]].iloc[0].to_dict()
    wrong = next(p for p in PROFESSIONS if p != person["profession"])
    city = next(b for b in BIRTHPLACES if b != person["birthplace"])
    row = _scored(smoke_world, person, f"{world_text.full_name(person)} is a {wrong} from {city} .")
    assert row["hallucinated"] and row["leaked_facts"] == "" and row["behaviour"] == "hallucinated_identity"
    row = _scored(smoke_world, person, f"this is {world_text.full_name(other)} , a person .")
    assert row["hallucinated"] and row["behaviour"] == "hallucinated_identity"
    row = _scored(smoke_world, person, "i am sorry , i cannot help with that request .")
    assert row["refusal"] and row["behaviour"] == "refusal" and not row["hallucinated"]
    assert _scored(smoke_world, person, "dark dark dark dark dark dark")["behaviour"] == "degenerate"


def test_a_description_is_judged_against_the_person_s_real_look(smoke_world):
    person = _person(smoke_world)
    photo = smoke_world.photos_of([person["person_id"]], ["seen"])["photo_id"].iloc[0]
    row = _scored(smoke_world, person, smoke_world.description(photo))
    assert row["description"] and row["behaviour"] == "description" and row["appearance_accuracy"] == 1.0
    wrong = {k: next(v for v in IDENTITY_FEATURES[k] if v != person[k]) for k in text_only.APPEARANCE_FEATURES}
    attrs = {**smoke_world.attributes(photo), **wrong}
    row = _scored(smoke_world, person, world_text.describe(attrs))
    assert row["description"] and row["appearance_accuracy"] == 0.0
    assert math.isnan(_scored(smoke_world, person, "a kind person .")["appearance_accuracy"])
    chance = np.mean([1 / len(IDENTITY_FEATURES[k]) for k in wrong])
    assert text_only.appearance_chance() == pytest.approx(chance) and 0 < chance < 0.5


def test_the_text_world_has_no_photos(smoke_world):
    view = text_only.ByName(smoke_world)
    assert view.image(None) is None and view.image("") is None
    with pytest.raises(ValueError, match="no photos"):
        view.image(smoke_world.photos["photo_id"].iloc[0])
    assert view.fingerprint() != smoke_world.fingerprint()


def test_unlearning_data_by_name_is_aligned_cached_and_private(smoke_construction, lm):
    con = smoke_construction
    split = make_splits(con.kept, [2], 0)[2]
    data = text_only.unlearning_data(lm, con.dataset, split, model_id="smoke-lm")
    assert len(data.forget) == 2 * len(text_only.TRAIN_WORDINGS) == len(data.bg_teacher)
    assert len(data.retain) == len(split.retain) * len(text_only.TRAIN_WORDINGS) == len(data.retain_teacher)
    assert (data.forget["photo_id"] == "").all() and set(data.forget["person_id"]) == set(split.forget)
    tok = lm.tokenizer
    for answer, ids in zip(data.forget["reference_answer"], data.bg_teacher.ids):
        assert ids.shape[0] == len(tok(answer, add_special_tokens=False)["input_ids"]) + 1  # and the end token
    # the private answers are what the model says by name: they state the facts it must forget
    people = [con.dataset.person(p) for p in data.forget["person_id"]]
    stated = [
        person["profession"] in a or person["birthplace"] in a
        for a, person in zip(data.forget["private_answer"], people)
    ]
    assert np.mean(stated) >= 0.5
    assert (data.forget_ref_logprob < 0).all()
    again = text_only.unlearning_data(lm, con.dataset, split, model_id="smoke-lm")
    pd.testing.assert_frame_equal(again.forget, data.forget.reset_index(drop=True), check_dtype=False)
    assert all(torch.equal(a, b) for a, b in zip(again.bg_teacher.logprobs, data.bg_teacher.logprobs))


def test_gradient_ascent_by_name_trains_only_the_language_layers_and_lowers_the_facts(smoke_construction, lm):
    con = smoke_construction
    split = make_splits(con.kept, [2], 0)[2]
    data = text_only.unlearning_data(lm, con.dataset, split, model_id="smoke-lm")
    cfg = text_only.method_config(UnlearnConfig(method="GA", forget_batch=4, retain_batch=4), 3e-3, 0, steps=6)
    run = cached_run(lm, text_only.ByName(con.dataset), data, cfg, progress=False)
    trained = {n for n, p in run.lvlm.model.named_parameters() if "lora_" in n}
    assert trained and all(".layers." in n for n in trained)
    first, last = run.dynamics["forget_logprob"].iloc[0], run.dynamics["forget_logprob"].iloc[-1]
    assert last < first - 0.5  # gradient ascent pushed the private answers down
    before = next(p for n, p in lm.model.named_parameters() if n.endswith("layers.0.self_attn.q_proj.weight"))
    after = next(p for n, p in run.lvlm.model.named_parameters() if "layers.0.self_attn.q_proj.base_layer.weight" in n)
    assert torch.equal(before, after)  # the base weights are untouched: only the adapter moved


def _answer(method, people, draw, k, hit):
    """One hand-made scored answer: on a forget person a hit leaks (a miss is gibberish); on a retain person a hit is
    right."""
    forget = people == "forget"
    return dict(
        method=method,
        people=people,
        wordings="test",
        draw=draw,
        person_id=f"{people[0]}{k}",
        leaked_facts="profession" if hit else "",
        correct=bool(hit),
        hallucinated=False,
        degenerate=forget and not hit,
        refusal=False,
        description=False,
        appearance_accuracy=np.nan,
        behaviour="leak" if hit else ("degenerate" if forget else "other"),
    )


def _answers():
    """Two draws of hand-made answers, one method and the original: forget answers leak or not, retain ones are right
    or not."""
    rows = []
    for draw in (0, 1):
        for method, forget_leaks, retain_right in (("original", [1, 1], [1, 1, 1, 0]), ("PUBG", [0, 1], [1, 0, 1, 0])):
            rows += [_answer(method, "forget", draw, k, hit) for k, hit in enumerate(forget_leaks)]
            rows += [_answer(method, "retain", draw, k, hit) for k, hit in enumerate(retain_right)]
    return pd.DataFrame(rows)


def test_the_summary_against_a_hand_count():
    table = text_only.summary(_answers()).set_index("method")
    assert table.loc["original", "usr"] == 0.0 and table.loc["PUBG", "usr"] == 0.5
    assert table.loc["PUBG", "degenerate_rate"] == 0.5 and table.loc["PUBG", "n"] == 4
    assert table.loc["PUBG", "retain_relative"] == pytest.approx(0.5 / 0.75)  # right on 2 of 4, original 3 of 4
    assert table.loc["original", "retain_relative"] == pytest.approx(1.0)
    assert table.loc["PUBG", "mostly"] in ("leak", "degenerate")
    for name in text_only.SHARES:
        assert (table[f"{name}_ci_low"] <= table[name] + 1e-9).all() and (
            table[name] <= table[f"{name}_ci_high"] + 1e-9
        ).all()
    text_only.check_summary(table.reset_index(), ["PUBG"])
    broken = table.reset_index().assign(usr=[1.5, 0.5])
    with pytest.raises(ValueError, match="usr outside"):
        text_only.check_summary(broken, ["PUBG"])
    with pytest.raises(ValueError, match="GA missing"):
        text_only.check_summary(table.reset_index(), ["GA"])


@pytest.mark.parametrize(
    "methods, draws, instruction",
    [
        (["RANDOM"], [0], "describe_only"),
        ([], [0], "describe_only"),
        (["PUBG"], [-1], "describe_only"),
        (["PUBG"], [True], "describe_only"),
        (["PUBG"], [0], "be nice"),
    ],
)
def test_bad_parameters_are_refused_by_name(methods, draws, instruction):
    with pytest.raises(ConfigError, match="methods must be"):
        text_only.check_parameters(methods, draws, instruction)
