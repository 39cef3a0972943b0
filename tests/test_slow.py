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
