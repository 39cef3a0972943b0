"""The real-model path, run on the CPU with the tiny model saved like a hub model and the world exported as a folder."""
import json
from pathlib import Path

import pytest

from pubg_lib.config import ConfigError
from pubg_lib.unlearn import main, run_from_config


@pytest.fixture()
def run_config(tmp_path, smoke_construction):
    con = smoke_construction
    folder = con.dataset.export(tmp_path / "photos")
    spec = {"model": str(con.model_dir), "data": str(folder), "forget": list(con.split(2).forget),
            "out_dir": str(tmp_path / "run"), "topk": 8,
            "unlearn": {"method": "PUBG", "steps": 2, "forget_batch": 2, "retain_batch": 2}}
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
    with pytest.raises(KeyError, match="nobody"):
        run_from_config(bad)
    bad.write_text(json.dumps({k: v for k, v in spec.items() if k != "model"}))
    with pytest.raises(ConfigError, match="model"):
        run_from_config(bad)
