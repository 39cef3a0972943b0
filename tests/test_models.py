import torch

from pubg_lib import models, pretraining, prompts
from pubg_lib.labels import IGNORE


def test_save_load_round_trip_gives_identical_logits(tmp_path, smoke_lvlm, smoke_world):
    lvlm = smoke_lvlm
    lvlm.model.save_pretrained(tmp_path / "m")
    lvlm.processor.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    loaded = models.load_lvlm(tmp_path / "m")
    assert type(loaded.model).__name__ == "LlavaForConditionalGeneration"
    photo = smoke_world.photos["photo_id"][0]
    ex_a = models.encode_example(
        lvlm, smoke_world.image(photo), prompts.PAPER_QUERY, smoke_world.identity_answer(photo)
    )
    ex_b = models.encode_example(
        loaded, smoke_world.image(photo), prompts.PAPER_QUERY, smoke_world.identity_answer(photo)
    )
    assert ex_a["input_ids"] == ex_b["input_ids"]
    assert torch.equal(ex_a["pixel_values"], ex_b["pixel_values"])
    batch = models.collate([ex_a], lvlm.tokenizer.pad_token_id)
    with torch.no_grad():
        la = lvlm.model(**batch).logits
        lb = loaded.model(**batch).logits
    assert torch.equal(la, lb)
    assert loaded.tokenizer.get_vocab() == lvlm.tokenizer.get_vocab()
    assert prompts.chat_prompt(loaded.processor, "hi .") == prompts.chat_prompt(lvlm.processor, "hi .")


def test_image_token_count_equals_vision_features(smoke_lvlm, smoke_world):
    lvlm = smoke_lvlm
    ex = models.encode_example(lvlm, smoke_world.image("p000_00"), prompts.PAPER_QUERY)
    n_tokens = sum(t == lvlm.model.config.image_token_index for t in ex["input_ids"])
    with torch.no_grad():
        feats = lvlm.model.get_image_features(pixel_values=ex["pixel_values"])
    feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    n_feats = sum(f.shape[0] for f in feats) if isinstance(feats, (list, tuple)) else feats.shape[0] * feats.shape[1]
    cfg = lvlm.model.config.vision_config
    assert n_tokens == n_feats == (cfg.image_size // cfg.patch_size) ** 2


def test_labels_cover_answer_tokens_only(smoke_lvlm, smoke_world):
    ex = models.encode_example(smoke_lvlm, smoke_world.image("p000_00"), "who ?", "this is it .")
    answer = [t for t in ex["labels"] if t != IGNORE]
    tok = smoke_lvlm.tokenizer
    assert tok.decode(answer) == "this is it . </s>"
    assert ex["labels"][: len(ex["input_ids"]) - len(answer)] == [IGNORE] * (len(ex["input_ids"]) - len(answer))


def test_batched_left_padded_generation_equals_one_by_one(smoke_lvlm, smoke_world):
    ids = smoke_world.photos["photo_id"][:4].tolist()
    queries = [prompts.PAPER_QUERY, "who is this person ?", prompts.instructed(prompts.PAPER_QUERY), "hi ."]
    images = smoke_world.images(ids)
    batched = models.generate(smoke_lvlm, images, queries, max_new_tokens=12, batch_size=4, progress=False)
    single = [
        models.generate(smoke_lvlm, [im], [q], max_new_tokens=12, progress=False)[0] for im, q in zip(images, queries)
    ]
    assert batched == single


def test_original_model_cache_is_reused(smoke_cfgs, smoke_construction):
    world, model = smoke_cfgs
    target = pretraining.original_model_dir(world, model)
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    lvlm, record = pretraining.get_original_model(world, model, progress=False)
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp
    assert record["pretrain_seconds"] > 0 and record["parameters"] > 0
