"""The real-model path, run on the CPU with the tiny model saved like a hub model and the world exported as a folder."""

import json
from pathlib import Path

import pytest

from pubg_lib.cli import main, run_from_config
from pubg_lib.config import ConfigError
from pubg_lib.entities import DataError


@pytest.fixture()
def run_config(tmp_path, smoke_construction):
    con = smoke_construction
    folder = con.dataset.export(tmp_path / "photos")
    spec = {
        "model": str(con.model_dir),
        "data": str(folder),
        "forget": list(con.split(2).forget),
        "out_dir": str(tmp_path / "run"),
        "topk": 8,
        "unlearn": {"method": "PUBG", "steps": 2, "forget_batch": 2, "retain_batch": 2},
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(spec))
    return path, spec


def test_cli_unlearns_from_a_config_file(run_config, capsys):
    path, spec = run_config
    main(["--config", str(path)])
    assert "PUBG: 2 steps" in capsys.readouterr().out
    record = json.loads((Path(spec["out_dir"]) / "run.json").read_text())
    assert record["reference_settings"]["topk"] == 8
    with pytest.raises(FileExistsError):
        main(["--config", str(path)])


def test_bad_configs_are_refused_by_name(run_config, tmp_path):
    path, spec = run_config
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**spec, "lerning_rate": 1}))
    with pytest.raises(ConfigError, match="lerning_rate"):
        run_from_config(bad)
    bad.write_text(json.dumps({**spec, "forget": ["nobody"]}))
    with pytest.raises(DataError, match="nobody"):
        run_from_config(bad)
    bad.write_text(json.dumps({k: v for k, v in spec.items() if k != "model"}))
    with pytest.raises(ConfigError, match="model"):
        run_from_config(bad)


def test_cli_runs_under_accelerate_launch_with_two_processes(run_config):
    """The documented multi-process command: each process trains on its slice of every step's batch, gradients are
    averaged, only the main process writes the run and prints."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    path, spec = run_config
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_port",
        "29517",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "pubg_lib.unlearn",
        "--config",
        str(path),
    ]
    # on GPUs this is `accelerate launch --multi_gpu --num_processes 2 ...`; ACCELERATE_USE_CPU runs the same DDP
    # code path on CPU processes (gloo)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "yes"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("PUBG: 2 steps") == 1, done.stdout
    out = Path(spec["out_dir"])
    record = json.loads((out / "run.json").read_text())
    assert record["processes"] == 2
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(float(v.abs().max()) > 0 for v in lora_b), "the adapter did not train"


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("configs/*.json")), ids=lambda p: p.name)
def test_committed_configs_are_valid(path):
    from pubg_lib.cli import read_run_config

    spec, cfg = read_run_config(path)
    assert cfg.method == "PUBG" and spec["forget"]
    assert not spec.get("trust_remote_code", False)
