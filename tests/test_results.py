"""The committed results: strict JSON everywhere, each JSON result carries its provenance, writes are atomic."""

import json
import math
import os
import stat

import numpy as np
import pandas as pd
import pytest

from pubg_lib import paths
from pubg_lib.io import read_json, replace_dir, staging_dir, write_json

RESULT_FILES = sorted(paths.RESULTS.glob("*.json"))


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: p.name)
def test_every_result_file_parses_with_a_strict_parser(path):
    def refuse(constant):
        raise ValueError(f"{path.name} holds {constant}")

    json.loads(path.read_text(), parse_constant=refuse)


def test_write_json_turns_non_finite_numbers_into_null(tmp_path):
    path = write_json(tmp_path / "x.json", {"a": math.nan, "b": [np.float32("inf"), 1.5], "c": np.int64(3)})
    assert json.loads(path.read_text()) == {"a": None, "b": [None, 1.5], "c": 3}
    (tmp_path / "bad.json").write_text('{"a": NaN}')
    with pytest.raises(ValueError, match="NaN"):
        read_json(tmp_path / "bad.json")


def test_written_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "x.json", {})
        folder = staging_dir(tmp_path / "run")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_replace_dir_swaps_whole_folders(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old")
    new = staging_dir(target)
    (new / "new.txt").write_text("new")
    replace_dir(new, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left aside


def test_staged_outputs_reach_the_results_only_when_promoted(tmp_path, monkeypatch):
    from pubg_lib import outputs

    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    final = (tmp_path / "results", tmp_path / "figures")
    monkeypatch.setattr(paths, "output_dirs", lambda smoke, variant=None: final)
    out = outputs.NotebookOutputs("99_example", smoke=False, parameters={"steps": 3})
    out.write_json("99_example.json", {"usr": 1.0})
    (out.figures_dir / "99_plot.png").write_bytes(b"png")
    out.write_figure_data("99_plot", pd.DataFrame({"x": [1, 2], "y": [0.5, 0.25]}))
    assert not final[0].exists() and not outputs.promoted_outputs_present("99_example", False)
    done = out.promote()
    assert len(done) == 3
    assert pd.read_csv(tmp_path / "figure_data" / "99_plot.csv")["y"].tolist() == [0.5, 0.25]
    record = read_json(final[0] / "99_example.json")
    assert record["usr"] == 1.0 and record["provenance"]["parameters"] == {"steps": 3}
    assert {"torch_threads", "cpu", "packages"} <= set(record["provenance"])
    assert record["provenance"]["packages"]["torch"]
    assert outputs.promoted_outputs_present("99_example", False)
    (final[1] / "99_plot.png").unlink()
    assert not outputs.promoted_outputs_present("99_example", False)  # a deleted output makes the runner rerun


def test_later_notebooks_keep_the_people_notebook_01_kept(tmp_path, monkeypatch):
    """Notebook 01's filter (min_share, forget-set sizes) reaches every later notebook through its stored result,
    for the seed it was run on; otherwise the defaults apply, and the message says which."""
    from pubg_lib.construction import DEFAULT_MIN_SHARE, notebook_01_parameters

    monkeypatch.setattr(paths, "output_dirs", lambda smoke, variant=None: (tmp_path, tmp_path))
    assert notebook_01_parameters(0, smoke=False)["min_share"] == DEFAULT_MIN_SHARE
    smoke = notebook_01_parameters(0, smoke=True)  # the smoke world recognises its people: the same filter
    assert smoke["min_share"] == DEFAULT_MIN_SHARE and smoke["forget_sizes"] == [2]
    write_json(
        tmp_path / "01_dataset_construction.json",
        {"recognition_filter": {"seed": 3, "min_share": 0.75, "forget_sizes": [5, 10]}},
    )
    used = notebook_01_parameters(3, smoke=False)
    assert used["min_share"] == 0.75 and used["forget_sizes"] == [5, 10]
    other = notebook_01_parameters(0, smoke=False)
    assert other["min_share"] == DEFAULT_MIN_SHARE and "seed 3" in other["from"]
