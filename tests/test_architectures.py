"""The same unlearn-and-evaluate path on LLaVA (1.5 style) and LLaVA-NeXT (1.6, the paper's models)."""

import dataclasses

import pytest
import torch

from pubg_lib.entities import Split
from pubg_lib.evaluate import answer_table
from pubg_lib.models import load_lvlm
from pubg_lib.pretraining import get_original_model, original_model_dir
from pubg_lib.reference import build_unlearning_data
from pubg_lib.unlearn import UnlearnConfig, unlearn

EXPECTED = {"llava": "LlavaForConditionalGeneration", "llava_next": "LlavaNextForConditionalGeneration"}


@pytest.mark.parametrize("architecture", list(EXPECTED))
def test_unlearn_and_evaluate_on_each_architecture(architecture, smoke_cfgs, smoke_world):
    world, model_cfg = smoke_cfgs
    model_cfg = dataclasses.replace(model_cfg, architecture=architecture, epochs=3)
    _, record = get_original_model(world, model_cfg, dataset=smoke_world, progress=False)
    lvlm = load_lvlm(original_model_dir(world, model_cfg))  # through the Auto classes, like a hub model
    assert type(lvlm.model).__name__ == EXPECTED[architecture]
    people = smoke_world.people.loc[smoke_world.people["trained"], "person_id"].tolist()
    split = Split(tuple(people[:2]), tuple(people[2:]))
    data = build_unlearning_data(lvlm, smoke_world, split, model_id=architecture, progress=False)
    before = {k: v.clone() for k, v in lvlm.model.state_dict().items()}
    cfg = UnlearnConfig(method="PUBG", steps=2, forget_batch=2, retain_batch=2, learning_rate=1e-2)
    run = unlearn(lvlm, smoke_world, data, cfg, progress=False)
    assert run.dynamics["bg_kl"].notna().sum() == 2 and run.dynamics["ga"].notna().sum() == 2
    lora = [n for n, _ in run.lvlm.model.named_modules() if n.endswith("lora_A")]
    assert lora and all("language_model" in n for n in lora)  # adapters on the LLM only, found by config
    table = answer_table(run.lvlm, smoke_world, smoke_world.photos["photo_id"][:4], progress=False)
    assert len(table) == 4 and {"behaviour", "judge_inform"} <= set(table.columns)
    assert all(torch.equal(before[k], v) for k, v in lvlm.model.state_dict().items())
