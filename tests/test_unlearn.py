"""The unlearning loop: registry, refusals of bad settings, determinism, saving, divergence handling."""

import pytest
import torch

from pubg_lib import methods, prompts
from pubg_lib.config import ConfigError
from pubg_lib.models import generate
from pubg_lib.reference import build_unlearning_data
from pubg_lib.runs import RunError, cached_run, load_run, run_dir, train_and_save
from pubg_lib.unlearn import UnlearnConfig, UnlearningDiverged, base_model_fingerprint, unlearn


@pytest.fixture(scope="module")
def unlearning_data(smoke_construction):
    con = smoke_construction
    return build_unlearning_data(con.lvlm, con.dataset, con.split(2), model_id=str(con.model_dir), progress=False)


def _cfg(method="PUBG", **kw):
    base = dict(method=method, steps=3, forget_batch=2, retain_batch=2, learning_rate=1e-2, seed=0)
    return UnlearnConfig(**{**base, **kw})


def test_unknown_method_and_negative_weight_are_refused():
    with pytest.raises(KeyError, match="unknown method 'SCRUB'"):
        UnlearnConfig(method="SCRUB")
    with pytest.raises(ConfigError, match="lam"):
        UnlearnConfig(lam=-1.0)
    with pytest.raises(ConfigError, match="gamma"):
        UnlearnConfig(gamma=-0.1)
    with pytest.raises(ConfigError, match="retain_loss"):
        UnlearnConfig(retain_loss="l2")


def test_reference_cache_is_reused_and_aligned(smoke_construction, unlearning_data):
    con, data = smoke_construction, unlearning_data
    again = build_unlearning_data(con.lvlm, con.dataset, con.split(2), model_id=str(con.model_dir), progress=False)
    assert again.forget.equals(data.forget)
    assert all(torch.equal(a, b) for a, b in zip(again.bg_teacher.logprobs, data.bg_teacher.logprobs))
    assert len(data.bg_teacher) == len(data.forget) and len(data.retain_teacher) == len(data.retain)
    tok = con.lvlm.tokenizer
    for answer, ids in zip(data.forget["reference_answer"], data.bg_teacher.ids):
        assert ids.shape[0] == len(tok(answer, add_special_tokens=False)["input_ids"]) + 1  # + </s>
    probs = data.bg_teacher.logprobs[0].exp().sum(-1)
    assert torch.allclose(probs, torch.ones_like(probs), atol=1e-4)  # full vocabulary: exact distributions


def test_unknown_instruction_is_refused(smoke_construction):
    con = smoke_construction
    with pytest.raises(KeyError, match="unknown instruction"):
        build_unlearning_data(con.lvlm, con.dataset, con.split(2), model_id="x", instruction_name="nope")


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_every_method_runs_and_leaves_the_original_untouched(method, smoke_construction, unlearning_data):
    con = smoke_construction
    before = {k: v.clone() for k, v in con.lvlm.model.state_dict().items()}
    run = unlearn(
        con.lvlm,
        con.dataset,
        unlearning_data,
        _cfg(method, retain_loss="kl" if method == "BG" else "nll"),
        progress=False,
    )
    dyn = run.dynamics
    assert len(dyn) == 4 and dyn["total"].iloc[:3].notna().all()
    assert {"forget_logprob", "retain_logprob", "grad_norm"} <= set(dyn.columns)
    after = con.lvlm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_same_seed_gives_identical_adapter_and_dynamics(smoke_construction, unlearning_data, tmp_path):
    con = smoke_construction
    a = train_and_save(con.lvlm, con.dataset, unlearning_data, _cfg(), tmp_path / "a", progress=False)
    b = train_and_save(con.lvlm, con.dataset, unlearning_data, _cfg(), tmp_path / "b", progress=False)
    cols = [c for c in a.dynamics.columns if c != "step_seconds"]
    assert a.dynamics[cols].equals(b.dynamics[cols])
    sa, sb = a.lvlm.model.state_dict(), b.lvlm.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if "lora_" in k)
    c = unlearn(con.lvlm, con.dataset, unlearning_data, _cfg(seed=1), progress=False)
    assert not c.dynamics[cols].equals(a.dynamics[cols])


def test_run_is_saved_loaded_and_never_overwritten(smoke_construction, unlearning_data, tmp_path):
    con = smoke_construction
    run = train_and_save(con.lvlm, con.dataset, unlearning_data, _cfg("GA"), tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "adapter_model.safetensors").exists()
    assert run.record["method"] == "GA" and run.record["data_hash"] == con.dataset.fingerprint()
    loaded = load_run(con.lvlm, tmp_path / "r")
    batch = {"input_ids": torch.tensor([[1, 2, 3]])}
    with torch.no_grad():
        assert torch.allclose(loaded.lvlm.model(**batch).logits, run.lvlm.model(**batch).logits)
    with pytest.raises(FileExistsError, match="finished run"):
        train_and_save(con.lvlm, con.dataset, unlearning_data, _cfg("GA"), tmp_path / "r", progress=False)


def test_nan_loss_stops_with_a_clear_error_and_keeps_last_good_adapter(smoke_construction, unlearning_data, tmp_path):
    con = smoke_construction
    calls = {"n": 0}

    def poison(step, model):
        if step == 2:  # corrupt the forward from step 2 on
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    with torch.no_grad():
                        p.fill_(float("nan"))
        calls["n"] += 1

    with pytest.raises(UnlearningDiverged, match="step 2"):
        train_and_save(
            con.lvlm, con.dataset, unlearning_data, _cfg("GA"), tmp_path / "n", progress=False, step_callback=poison
        )
    from safetensors.torch import load_file

    state = load_file(tmp_path / "n" / "adapter_last_good" / "adapter_model.safetensors")
    assert all(torch.isfinite(v).all() for v in state.values())


def test_cached_teacher_equals_the_recomputed_teacher(smoke_construction, unlearning_data):
    """The cache holds exactly what running the prompted original model would give inside the loop."""
    from pubg_lib.unlearn import UnlearningLoop

    con = smoke_construction
    cfg = _cfg("PUBG")
    cached = UnlearningLoop(con.lvlm, con.dataset, unlearning_data, cfg)
    fresh = UnlearningLoop(con.lvlm, con.dataset, unlearning_data, cfg, teacher="recompute")
    f_idx, r_idx = [0, 1], [0, 1]
    with torch.no_grad():
        a, b = cached.loss_terms(f_idx, r_idx), fresh.loss_terms(f_idx, r_idx)
    assert a["bg_kl"].item() == pytest.approx(b["bg_kl"].item(), abs=1e-5)
    assert a["bg_kl"].item() > 0  # the student sees q, the teacher q ⊕ c: they differ before training


def test_shared_example_cache_changes_nothing(smoke_construction, unlearning_data):
    """Runs that share encoded examples (as an experiment's runs on one forget set do) train exactly as runs that
    encode their own."""
    import pandas as pd

    con, data = smoke_construction, unlearning_data
    alone = unlearn(con.lvlm, con.dataset, data, _cfg(), progress=False).dynamics
    shared: dict = {}
    unlearn(con.lvlm, con.dataset, data, _cfg(method="BG"), progress=False, example_cache=shared)
    filled = len(shared)
    again = unlearn(con.lvlm, con.dataset, data, _cfg(), progress=False, example_cache=shared).dynamics
    assert filled > 0 and len(shared) == filled  # BG encoded every example PUBG needs
    pd.testing.assert_frame_equal(alone.drop(columns="step_seconds"), again.drop(columns="step_seconds"))


def test_a_collapsed_run_is_saved_and_says_so(smoke_construction, unlearning_data, tmp_path):
    con = smoke_construction
    wild = train_and_save(
        con.lvlm,
        con.dataset,
        unlearning_data,
        _cfg("GA", learning_rate=1.0, steps=4),  # clipped: runs away without overflowing to NaN (5.0 unclipped did)
        tmp_path / "wild",
        progress=False,
    )
    assert wild.record["diagnostics"]["collapsed"], wild.record["diagnostics"]
    assert (tmp_path / "wild" / "run.json").exists()
    calm = unlearn(con.lvlm, con.dataset, unlearning_data, _cfg("PUBG", learning_rate=1e-4, steps=2), progress=False)
    assert not calm.record["diagnostics"]["collapsed"], calm.record["diagnostics"]


def test_overwrite_replaces_the_whole_run_and_a_mixed_run_is_refused(smoke_construction, unlearning_data, tmp_path):
    con = smoke_construction
    out = tmp_path / "r"
    train_and_save(con.lvlm, con.dataset, unlearning_data, _cfg("GA"), out, progress=False)
    (out / "stray.txt").write_text("left by someone")
    second = train_and_save(
        con.lvlm, con.dataset, unlearning_data, _cfg("GA", seed=3), out, overwrite=True, progress=False
    )
    assert not (out / "stray.txt").exists() and second.record["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary folder left behind
    # an adapter from another run beside this run.json: refused by name, not silently loaded
    other = train_and_save(con.lvlm, con.dataset, unlearning_data, _cfg("GA", seed=4), tmp_path / "o", progress=False)
    (out / "adapter_model.safetensors").write_bytes((other.out_dir / "adapter_model.safetensors").read_bytes())
    with pytest.raises(RunError, match="does not match"):
        load_run(con.lvlm, out)
    # a damaged cache entry is trained again rather than trusted
    cfg = _cfg("GA", seed=5)
    cached = run_dir(unlearning_data, cfg)
    cached_run(con.lvlm, con.dataset, unlearning_data, cfg, progress=False)
    (cached / "adapter_model.safetensors").write_bytes(b"broken")
    again = cached_run(con.lvlm, con.dataset, unlearning_data, cfg, progress=False)
    assert load_run(con.lvlm, cached).record["adapter_sha256"] == again.record["adapter_sha256"]


def test_a_saved_run_loads_with_plain_peft_and_transformers(smoke_construction, unlearning_data, tmp_path):
    """A run folder is an adapter folder as plain Hugging Face code expects it: `PeftModel.from_pretrained(base,
    run_dir)` with the base model loaded by `transformers` alone gives the answers `pubg_lib` gives; no absolute
    cache path is written inside; the model card names the method and the forget people."""
    import json

    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    con = smoke_construction
    run = train_and_save(con.lvlm, con.dataset, unlearning_data, _cfg("PUBG"), tmp_path / "r", progress=False)
    folder = tmp_path / "r"
    config = json.loads((folder / "adapter_config.json").read_text())
    record = json.loads((folder / "run.json").read_text())
    assert config["base_model_name_or_path"] == record["base_model"] and record["base_model"].startswith("cache:")
    assert str(tmp_path) not in (folder / "adapter_config.json").read_text()
    assert record["base_model_fingerprint"] == base_model_fingerprint(str(con.model_dir))
    assert record["forget"] == list(unlearning_data.forget["person_id"].unique())
    card = (folder / "README.md").read_text()
    assert "PUBG" in card and all(p in card for p in record["forget"])

    # plain code: the base by its folder, the adapter by the run folder; nothing from pubg_lib in the loading
    base = AutoModelForImageTextToText.from_pretrained(con.model_dir)
    processor = AutoProcessor.from_pretrained(con.model_dir)
    plain = PeftModel.from_pretrained(base, folder).eval()

    photo = unlearning_data.forget["photo_id"].iloc[0]
    image = con.dataset.images([photo])[0]
    ours = generate(run.lvlm, [image], [prompts.PAPER_QUERY], progress=False)[0]
    text = prompts.chat_prompt(processor, prompts.PAPER_QUERY, image=True)  # the world's chat format
    inputs = processor(images=[image], text=[text], return_tensors="pt")
    with torch.no_grad():
        out = plain.generate(**inputs, max_new_tokens=prompts.MAX_ANSWER_TOKENS, do_sample=False)
    theirs = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert theirs == ours


def test_settings_files_give_a_common_base_and_per_method_settings(tmp_path):
    """A settings file's common part is every method's base (and a sweep's, as `common_settings`); a method's own
    entries and keyword overrides win, in that order; an unknown method is refused by name."""
    import json

    from pubg_lib.runs import common_settings, method_settings

    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"common": {"steps": 7, "gamma": 2.0}, "methods": {"GA": {"steps": 9}, "PUBG": {}}}))
    base = common_settings(path)
    assert (base.method, base.steps, base.gamma) == ("PUBG", 7, 2.0)
    assert common_settings(path, forget_batch=3).forget_batch == 3
    settings = method_settings(path, forget_batch=3)
    assert settings["GA"].steps == 9 and settings["PUBG"].steps == 7 and settings["GA"].forget_batch == 3
    assert method_settings(path, overrides={"GA": {"steps": 11}})["GA"].steps == 11
    path.write_text(json.dumps({"common": {}, "methods": {"NOPE": {}}}))
    with pytest.raises(KeyError, match="NOPE"):
        method_settings(path)
