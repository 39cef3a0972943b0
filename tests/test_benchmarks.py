"""The benchmark scripts run and report what they claim (their numbers are measured on a quiet machine, never
asserted here): the pretraining profile's shares add up, and the 7B step is the compendium's own loop on LLaVA-1.6
with the paper's image geometry, at reduced width and depth on the CPU."""

import importlib.util

import pytest

from pubg_lib import paths


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, paths.ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_pretrain_reports_utilisation_and_where_the_time_goes():
    out = _bench("bench_pretrain").main(["--smoke", "--steps", "2"])
    assert 0 < out["mfu_unpadded"] <= out["mfu"] <= 1.5  # counted FLOPs over the machine's measured matmul rate
    assert 0 <= out["padding_share"] < 1
    assert sum(out["phase_shares"].values()) == pytest.approx(1.0)
    assert sum(out["operator_shares"].values()) == pytest.approx(1.0, abs=0.05)
    assert out["operator_shares"]["matmul"] > 0
    bf16 = out["bf16_autocast"]
    assert bf16["loss_after_bf16"] == pytest.approx(bf16["loss_after_fp32"], rel=0.05) and bf16["kept"] is False


@pytest.mark.slow
def test_bench_7b_runs_pubg_on_llava_next_with_the_papers_image_geometry():
    out = _bench("bench_7b").main(["--size", "tiny", "--steps", "1", "--device", "cpu"])
    assert out["image_tokens_per_photo"] >= 5 * 576  # the base image and a 2 x 2 grid of 336-px tiles
    lengths, batch = out["mean_sequence_tokens"], out["batch"]
    expected = batch["forget"] * (lengths["forget"] + lengths["guidance"]) + batch["retain"] * lengths["retain"]
    assert out["tokens_per_step"] == pytest.approx(expected)
    assert 0 < out["lora_trainable_parameters"] < 0.05 * out["parameters"]
    assert out["median_step_seconds"] > 0 and out["peak_memory_gib"] is None
    assert not (paths.RESULTS / "bench_7b.json").exists()  # only the real shapes on a GPU write a result
    shared = out["shared_prefix"]  # one prefix for both continuations: the same loss (bf16), measured both ways
    assert shared["max_abs_loss_diff"] <= 0.05 and shared["shared_over_unshared"] > 0


@pytest.mark.slow
def test_bench_parallel_trains_the_same_runs_both_ways(monkeypatch):
    monkeypatch.syspath_prepend(str(paths.ROOT / "benchmarks"))  # importable by name in the spawned processes too
    out = importlib.import_module("bench_parallel").main(["--smoke", "--runs", "2", "--steps", "1"])
    processes = out["parallel_2_processes_1_thread"]["processes"]
    assert [p["runs"] for p in processes] == [1, 1] and {p["threads"] for p in processes} == {1}
    assert out["sequential_2_threads"]["runs"] == 2 and out["sequential_2_threads"]["threads"] == 2
    assert out["speedup_training"] > 0 and not (paths.RESULTS / "bench_parallel.json").read_text().count("smoke")
