"""Every bad input gets a clear, named error before any model loads, and nothing already written changes.

Each case builds its bad input, snapshots the folders it could touch (the dataset, the run folder, the committed
results and figures), runs the call, expects the named error with a message that says what is wrong, and checks
that the snapshot is unchanged. Calls that could load a model run with model loading disabled, so an error that
comes only after loading fails the test.
"""

import hashlib
import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pubg_lib import paths
from pubg_lib.cli import read_run_config, run_from_config
from pubg_lib.config import ConfigError, TinyModelConfig, WorldConfig
from pubg_lib.entities import DataError, EntityDataset, Split
from pubg_lib.notebook_parameters import ParameterError
from pubg_lib.reproduce import plan_runs
from pubg_lib.unlearn import UnlearnConfig


def snapshot(*folders) -> dict:
    """Every file under the folders with its size and content hash."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")) if Path(folder).exists() else []:
            if p.is_file() or p.is_symlink():
                data = p.read_bytes() if p.is_file() else os.readlink(p).encode()
                out[str(p)] = (len(data), hashlib.sha256(data).hexdigest())
    return out


@pytest.fixture()
def no_model_loading(monkeypatch):
    """Loading a model is an error in these tests: bad input must be refused before."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was refused")

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", refuse)
    monkeypatch.setattr(AutoProcessor, "from_pretrained", refuse)


@pytest.fixture(scope="module")
def clean_export(tmp_path_factory, smoke_world):
    return smoke_world.export(tmp_path_factory.mktemp("clean") / "world")


@pytest.fixture()
def folder(tmp_path, clean_export):
    """A fresh copy of an exported smoke world, to be damaged by one case."""
    import shutil

    return Path(shutil.copytree(clean_export, tmp_path / "world"))


def _edit(path: Path, fn) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    changed = fn(frame)
    (frame if changed is None else changed).to_csv(path, index=False)


def _set(column, row, value):
    def fn(frame):
        frame.loc[row, column] = value

    return fn


# ---- the folder loader --------------------------------------------------------------------------------------------
def _symlink_out(root: Path):
    outside = root.parent / "outside.png"
    Image.new("RGB", (8, 8)).save(outside)
    (root / "p000" / "link.png").symlink_to(outside)
    _edit(root / "metadata.csv", _set("file_name", 0, "p000/link.png"))


def _same_stem(root: Path):
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    other = meta.loc[1, "file_name"]
    (root / "p000" / "dup").mkdir()
    (root / "p000" / "dup" / Path(meta.loc[0, "file_name"]).name).write_bytes((root / other).read_bytes())
    meta.loc[1, "file_name"] = "p000/dup/" + Path(meta.loc[0, "file_name"]).name
    meta.drop(columns=["photo_id"]).to_csv(root / "metadata.csv", index=False)


def _oversized(root: Path):
    Image.new("RGB", (4200, 4200), (200, 10, 10)).save(root / "p000" / "p000_00.png")


LOADER_CASES = {
    "parent path": (
        lambda r: _edit(r / "metadata.csv", _set("file_name", 0, "../outside.png")),
        "relative path inside",
    ),
    "nested parent path": (lambda r: _edit(r / "metadata.csv", _set("file_name", 0, "p000/../../x.png")), "inside"),
    "absolute path": (lambda r: _edit(r / "metadata.csv", _set("file_name", 0, "/etc/hostname")), "relative path"),
    "backslash path": (lambda r: _edit(r / "metadata.csv", _set("file_name", 0, "p000\\p000_00.png")), "relative"),
    "symlink out of the folder": (_symlink_out, "leads outside"),
    "duplicate file_name": (
        lambda r: _edit(r / "metadata.csv", _set("file_name", 1, "p000/p000_00.png")),
        "duplicate file_name",
    ),
    "duplicate photo_id": (lambda r: _edit(r / "metadata.csv", _set("photo_id", 1, "p000_00")), "duplicate photo_id"),
    "two files with one stem": (_same_stem, "file stem"),
    "duplicate person_id": (lambda r: _edit(r / "people.csv", _set("person_id", 1, "p000")), "duplicate person_id"),
    "empty photo_split cell": (
        lambda r: _edit(r / "metadata.csv", _set("photo_split", 3, "")),
        "empty .photo_split. on line",
    ),
    "empty person_id cell": (lambda r: _edit(r / "people.csv", _set("person_id", 2, "")), "empty 'person_id'"),
    "empty name cell": (lambda r: _edit(r / "people.csv", _set("name", 2, "  ")), "empty 'name' on line"),
    "trained neither true nor false": (lambda r: _edit(r / "people.csv", _set("trained", 0, "maybe")), "trained"),
    "unknown photo_split value": (
        lambda r: _edit(r / "metadata.csv", _set("photo_split", 0, "train")),
        "unknown photo_split",
    ),
    "photo of an unknown person": (lambda r: _edit(r / "metadata.csv", _set("person_id", 0, "p999")), "p999"),
    "missing people table": (lambda r: (r / "people.csv").unlink(), "missing table"),
    "people table without rows": (lambda r: (r / "people.csv").write_text("person_id,name\n"), "no rows"),
    "missing photo_split column": (
        lambda r: _edit(r / "metadata.csv", lambda f: f.drop(columns=["photo_split"])),
        "photo_split",
    ),
    "corrupt image": (lambda r: (r / "p001" / "p001_00.png").write_bytes(b"not a png"), "p001_00.png"),
    "missing image": (lambda r: (r / "p001" / "p001_00.png").unlink(), "missing"),
    "oversized image": (_oversized, "pixels"),
}


@pytest.mark.parametrize("case", list(LOADER_CASES))
def test_the_folder_loader_refuses(case, folder):
    damage, message = LOADER_CASES[case]
    damage(folder)
    before = snapshot(folder.parent)
    with pytest.raises(DataError, match=message):
        EntityDataset.from_folder(folder)
    assert snapshot(folder.parent) == before


def test_flags_parse_the_same_under_any_pandas(folder):
    _edit(folder / "people.csv", _set("trained", 0, "no"))
    _edit(folder / "people.csv", _set("trained", 1, "YES"))
    ds = EntityDataset.from_folder(folder)
    assert ds.people["trained"].dtype == bool
    assert not ds.people.loc[0, "trained"] and ds.people.loc[1, "trained"]


# ---- export ---------------------------------------------------------------------------------------------------------
def test_export_refuses_unsafe_ids_and_writes_nothing(tmp_path, smoke_world):
    people = smoke_world.people.copy()
    photos = smoke_world.photos.copy()
    people.loc[0, "person_id"] = "../../x"
    photos.loc[photos["person_id"] == smoke_world.people.loc[0, "person_id"], "person_id"] = "../../x"
    bad = EntityDataset(people, photos)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="ids become file names"):
        bad.export(tmp_path / "out")
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_export_refuses_a_non_empty_folder(tmp_path, smoke_world):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="not an empty folder"):
        smoke_world.export(tmp_path / "out")
    assert snapshot(tmp_path) == before


# ---- forget and retain sets -----------------------------------------------------------------------------------------
SPLIT_CASES = {
    "empty forget set": (lambda ds: Split((), ("p001",)).check(ds), "forget set is empty"),
    "forget twice": (lambda ds: Split(("p000", "p000"), ()).check(ds), "more than once"),
    "in both sets": (lambda ds: Split(("p000",), ("p000",)).check(ds), "both forget and retain"),
    "unknown forget person": (lambda ds: Split(("nobody",), ()).check(ds), "unknown person"),
    "forget person without a seen photo": (
        lambda ds: Split(("p000",), ()).check(
            EntityDataset(
                ds.people, ds.photos[~((ds.photos["person_id"] == "p000") & (ds.photos["photo_split"] == "seen"))]
            )
        ),
        "no seen photo",
    ),
}


@pytest.mark.parametrize("case", list(SPLIT_CASES))
def test_bad_splits_are_refused(case, smoke_world):
    call, message = SPLIT_CASES[case]
    with pytest.raises(DataError, match=message):
        call(smoke_world)


# ---- settings -------------------------------------------------------------------------------------------------------
CONFIG_CASES = {
    "NaN lambda": (UnlearnConfig, {"lam": math.nan}, "lam must be finite"),
    "NaN gamma": (UnlearnConfig, {"gamma": math.nan}, "gamma must be finite"),
    "NaN max_grad_norm": (UnlearnConfig, {"max_grad_norm": math.nan}, "max_grad_norm must be finite"),
    "infinite learning rate": (UnlearnConfig, {"learning_rate": math.inf}, "learning_rate must be finite"),
    "fractional steps": (UnlearnConfig, {"steps": 1.5}, "steps must be an integer"),
    "boolean steps": (UnlearnConfig, {"steps": True}, "steps must be an integer"),
    "string learning rate": (UnlearnConfig, {"learning_rate": "1e-3"}, "learning_rate must be a number"),
    "negative lambda": (UnlearnConfig, {"lam": -1.0}, "lam must be >= 0"),
    "zero steps": (UnlearnConfig, {"steps": 0}, "steps must be positive"),
    "unknown schedule": (UnlearnConfig, {"lr_schedule": "linear"}, "lr_schedule"),
    "no LoRA targets": (UnlearnConfig, {"lora_targets": ()}, "lora_targets"),
    "world seed as a string": (WorldConfig, {"seed": "1"}, "seed must be an integer"),
    "no seen photos": (WorldConfig, {"n_seen": 0}, "n_seen must be positive"),
    "fractional epochs": (TinyModelConfig, {"epochs": 2.5}, "epochs must be an integer"),
    "warmup share of 1": (TinyModelConfig, {"warmup_share": 1.0}, "warmup_share"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_settings_are_refused(case):
    cls, values, message = CONFIG_CASES[case]
    with pytest.raises(ConfigError, match=message):
        cls(**values)


@pytest.fixture()
def run_config(tmp_path, clean_export):
    spec = {
        "model": "some/model",
        "data": str(clean_export),
        "forget": ["p000"],
        "out_dir": str(tmp_path / "run"),
        "unlearn": {"method": "PUBG", "steps": 2},
    }
    return tmp_path, spec


RUN_CONFIG_CASES = {
    "trust_remote_code as a string": ({"trust_remote_code": "false"}, "trust_remote_code.*JSON boolean"),
    "reference_sampling as a string": ({"reference_sampling": "true"}, "reference_sampling"),
    "topk zero": ({"topk": 0}, "topk.*positive integer"),
    "topk fractional": ({"topk": 2.5}, "topk.*positive integer"),
    "unknown dtype": ({"dtype": "float8"}, "dtype"),
    "unknown instruction": ({"instruction": "be nice"}, "instruction"),
    "empty forget list": ({"forget": []}, "'forget' is empty"),
    "forget as a string": ({"forget": "p000"}, "list of person ids"),
    "unknown key": ({"lerning_rate": 1}, "lerning_rate"),
    "NaN in the unlearn settings": ({"unlearn": {"lam": math.nan}}, "NaN is not a valid number"),
    "steps as a string": ({"unlearn": {"steps": "30"}}, "steps must be an integer"),
}


@pytest.mark.parametrize("case", list(RUN_CONFIG_CASES))
def test_bad_run_configs_are_refused_before_any_model_loads(case, run_config, no_model_loading):
    tmp_path, spec = run_config
    change, message = RUN_CONFIG_CASES[case]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**spec, **change}))
    before = snapshot(tmp_path, paths.RESULTS, paths.FIGURES)
    with pytest.raises(ConfigError, match=message):
        run_from_config(path)
    assert snapshot(tmp_path, paths.RESULTS, paths.FIGURES) == before


def test_a_run_config_holding_nan_is_not_json(run_config):
    tmp_path, spec = run_config
    path = tmp_path / "run.json"
    path.write_text(json.dumps(spec)[:-1] + ', "topk": NaN}')
    with pytest.raises(ConfigError, match="NaN"):
        read_run_config(path)


DATA_IN_RUN_CASES = {
    "unknown forget person": ({"forget": ["nobody"]}, "unknown person"),
    "forget person also retained": ({"retain": ["p000", "p001"]}, "both forget and retain"),
}


@pytest.mark.parametrize("case", list(DATA_IN_RUN_CASES))
def test_bad_people_in_a_run_config_are_refused_before_any_model_loads(case, run_config, no_model_loading):
    tmp_path, spec = run_config
    change, message = DATA_IN_RUN_CASES[case]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**spec, **change}))
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match=message):
        run_from_config(path)
    assert snapshot(tmp_path) == before


def test_a_finished_run_is_refused_before_any_model_loads(run_config, no_model_loading):
    tmp_path, spec = run_config
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    path = tmp_path / "run.json"
    path.write_text(json.dumps(spec))
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="finished run"):
        run_from_config(path)
    assert snapshot(tmp_path) == before


def test_load_lvlm_refuses_a_string_for_trust_remote_code(no_model_loading):
    from pubg_lib.models import load_lvlm

    with pytest.raises(ConfigError, match="trust_remote_code"):
        load_lvlm("some/model", trust_remote_code="false")
    with pytest.raises(ConfigError, match="dtype"):
        load_lvlm("some/model", dtype="float8")


# ---- the runner -----------------------------------------------------------------------------------------------------
RUNNER_CASES = {
    "smoke overridden by -p": (dict(smoke=True, extra={"03": {"smoke": False}}), "'smoke' is set by --smoke"),
    "smoke switched on by -p": (dict(extra={"03": {"smoke": True}}), "'smoke' is set by --smoke"),
    "-p for a notebook that does not run": (dict(only=["03"], extra={"04": {"steps": 10}}), "does not execute"),
    "unknown parameter": (dict(only=["04"], extra={"04": {"stpes": 10}}), "did you mean 'steps'"),
    "parameter of the wrong type": (dict(only=["04"], extra={"04": {"steps": "ten"}}), "must be int"),
}


@pytest.mark.parametrize("case", list(RUNNER_CASES))
def test_the_runner_refuses_bad_parameters_before_running(case):
    kwargs, message = RUNNER_CASES[case]
    before = snapshot(paths.RESULTS, paths.FIGURES)
    with pytest.raises(ParameterError, match=message):
        plan_runs(**kwargs)
    assert snapshot(paths.RESULTS, paths.FIGURES) == before
