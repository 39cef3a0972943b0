"""Re-elicitation attacks: each one leaks on the original model (it knows its people) and never names people no
model ever saw; the relearning and quantization attacks leave the attacked model untouched; leak rates carry
their intervals; a model that leaks again is found only above its own paper-query rate and the strangers' floor."""

import numpy as np
import pandas as pd
import pytest
import torch

from pubg_lib import attacks
from pubg_lib.config import ConfigError
from pubg_lib.reference import build_unlearning_data


@pytest.fixture(scope="module")
def world(smoke_construction):
    con = smoke_construction
    split = con.split(2)
    data = build_unlearning_data(con.lvlm, con.dataset, split, model_id=str(con.model_dir), seed=0, progress=False)
    strangers = con.dataset.people.loc[con.dataset.people["role"] == "never_seen", "person_id"].tolist()
    return con, split, data, strangers


def _weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_leak_rate_has_its_interval_and_n():
    out = attacks.leak_rate([True, False, True, True], groups=np.array(["a", "a", "b", "b"]))
    assert out["leak_rate"] == 0.75 and out["n"] == 4 and out["ci_low"] <= 0.75 <= out["ci_high"] <= 1.0
    assert attacks.leak_rate([False] * 5) == {"leak_rate": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 5}


def test_every_attack_leaks_on_the_original_and_never_names_a_stranger(world):
    con, split, data, strangers = world
    seen = con.dataset.photos_of(split.forget, ["seen"])["photo_id"].tolist()
    probes = attacks.attack_probes(con.lvlm, con.dataset, seen, split.forget, data.retain, relearn_steps=(2,))
    rates = attacks.attack_table(probes).set_index("attack")["leak_rate"]
    assert rates["paper query"] >= 0.75 and rates["quantized to 4 bits"] >= 0.75  # the original knows them
    assert rates["by name, no photo"] >= 0.5 and rates["relearn 2 steps on retain"] >= 0.5
    photos = con.dataset.photos_of(strangers, ["seen", "val", "test"])["photo_id"].tolist()
    probes = attacks.attack_probes(con.lvlm, con.dataset, photos, strangers, data.retain, relearn_steps=(2,))
    for attack, table in probes.items():
        if "leaked_facts" in table:  # a stranger's name was never in any training text: it cannot come out
            assert not table["leaked_facts"].str.contains("name").any(), attack
    # (a stranger's profession or birthplace, or a yes to their unknown name, may still come out by chance: that is
    # the floor notebook 08 reads every attack against, not evidence of knowledge)


def test_relearning_and_quantizing_leave_the_attacked_model_untouched(world):
    con, split, data, _ = world
    before = _weights(con.lvlm.model)
    assert attacks.relearn(con.lvlm, con.dataset, data.retain, 0) is con.lvlm
    relearned = attacks.relearn(con.lvlm, con.dataset, data.retain, 2, learning_rate=1e-2)
    quantized = attacks.quantize(con.lvlm, bits=4)
    after = _weights(con.lvlm.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    name, weight = next(
        (n, m.weight) for n, m in quantized.model.named_modules() if "language_model" in n and hasattr(m, "weight")
        and isinstance(m, torch.nn.Linear)
    )  # fmt: skip
    assert all(len(torch.unique(row)) <= 15 for row in weight[:8])  # 4 bits, signed and symmetric: 15 levels
    assert not torch.equal(weight, dict(con.lvlm.model.named_modules())[name].weight)
    changed = [n for n, p in relearned.model.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert changed  # the fresh adapter was trained
    with pytest.raises(ValueError, match="steps >= 0"):
        attacks.relearn(con.lvlm, con.dataset, data.retain, -1)
    with pytest.raises(ValueError, match="2 <= bits <= 16"):
        attacks.quantize(con.lvlm, bits=1)


def test_sixteen_bits_keep_the_model_s_answers(world):
    con, split, _, _ = world
    photos = con.dataset.photos_of(split.forget, ["seen"])["photo_id"].tolist()[:4]
    plain = attacks.paper_query_leaks(con.lvlm, con.dataset, photos)["answer"].tolist()
    assert attacks.paper_query_leaks(attacks.quantize(con.lvlm, 16), con.dataset, photos)["answer"].tolist() == plain


def _table(forget_rates: dict, stranger_rates: dict, lows: dict | None = None) -> pd.DataFrame:
    rows = []
    for people, rates in (("forget", forget_rates), ("stranger", stranger_rates)):
        for (method, attack), rate in rates.items():
            low = (lows or {}).get((method, attack), rate) if people == "forget" else rate
            rows.append({"method": method, "people": people, "attack": attack, "leak_rate": rate, "ci_low": low,
                         "ci_high": min(1.0, rate + 0.1), "n": 20})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_model_leaks_again_only_above_its_own_rate_and_the_strangers_floor():
    forget = {("original", "paper query"): 1.0, ("PUBG", "paper query"): 0.0, ("PUBG", "held-out wordings"): 0.5,
              ("PUBG", "quantized to 4 bits"): 0.2, ("PUBG", "by name, no photo"): 0.3}  # fmt: skip
    forget |= {("original", attack): 1.0 for _, attack in forget}  # the original leaks under every attack
    stranger = dict.fromkeys(forget, 0.0) | {("PUBG", "quantized to 4 bits"): 0.25}
    lows = {
        ("PUBG", "held-out wordings"): 0.3,
        ("PUBG", "quantized to 4 bits"): 0.1,
        ("PUBG", "by name, no photo"): 0.0,
    }
    table = _table(forget, stranger, lows)
    # held-out wordings: its lower bound 0.3 clears both; quantization sits at the strangers' floor; by name's
    # interval reaches the paper-query rate
    assert attacks.resurfacing(table) == {"PUBG": ["held-out wordings"]}
    attacks.check_table(table, ["original", "PUBG"])
    with pytest.raises(ValueError, match="original/stranger lacks attacks"):
        attacks.check_table(table[~((table["method"] == "original") & (table["people"] == "stranger"))], ["original"])
    with pytest.raises(ValueError, match="outside its interval"):
        attacks.check_table(table.assign(ci_high=0.0), ["original", "PUBG"])


@pytest.mark.parametrize("bad", [([-1], 4), ([2.5], 4), ([5], 1), ([5], 17), ([5], True), ([True], 4)])
def test_bad_attack_settings_are_refused_by_name(bad):
    with pytest.raises(ConfigError, match="relearn_steps"):
        attacks.check_parameters(*bad)
