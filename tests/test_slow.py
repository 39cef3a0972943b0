"""Slow checks (`make test-slow`): the world check end to end on the smoke world."""

import json
import os
import subprocess
import sys

import pytest

from pubg_lib.robustness import BARS


@pytest.mark.slow
def test_the_world_check_measures_every_seed_and_thread_count(tmp_path):
    env = {**os.environ, "PUBG_BUILD": str(tmp_path / "build")}
    cmd = [sys.executable, "-m", "pubg_lib.robustness", "--smoke", "--stage", "world", "--seeds", "0", "1"]
    subprocess.run([*cmd, "--threads", "1", "2"], env=env, check=True)
    path = tmp_path / "build" / "smoke" / "results" / "world_robustness.json"
    result = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert [(r["seed"], r["threads"]) for r in result["variants"]] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert set(result["bars_hold"]) == set(BARS)
    for name, s in result["summary"].items():
        values = [r[name] for r in result["variants"]]
        assert s["min"] == min(values) <= s["mean"] <= max(values) == s["max"], name
    assert result["all_bars_hold"] == all(result["bars_hold"].values())
    assert "provenance" in result and result["smoke"] is True


def test_rows_measured_separately_are_summarised_as_the_check_does(tmp_path):
    """`--from-rows` summarises rows printed by separate `--variant` runs (other processes or machines)."""
    from pubg_lib.robustness import read_rows, summarise_variants

    base = dict.fromkeys(BARS, 1.0) | {"unseen_recognition_accuracy": 0.95, "seen_recognition_accuracy": 1.0}
    base |= {"kept_people": 40, "confirmation_accuracy": 0.5, "declined_heldout_refusal_rate": 0.0}
    files = []
    for seed, threads, unseen in ((1, 1, 0.92), (0, 2, 0.96)):
        path = tmp_path / f"s{seed}-t{threads}.log"
        row = {**base, "seed": seed, "threads": threads, "unseen_recognition_accuracy": unseen}
        path.write_text("progress ...\n" + json.dumps(row) + "\n")
        files.append(str(path))
    result = summarise_variants(read_rows(files))
    assert result["variant_pairs"] == [[0, 2], [1, 1]]
    assert result["summary"]["unseen_recognition_accuracy"] == {"min": 0.92, "max": 0.96, "mean": 0.94}
    assert result["bars_hold"]["unseen_recognition_accuracy"] is False and result["all_bars_hold"] is False
    (tmp_path / "empty.log").write_text("no row here\n")
    with pytest.raises(ValueError, match="no variant row"):
        read_rows([str(tmp_path / "empty.log")])
