"""The reproduction runner's decisions, on throwaway notebooks in a temporary project: it skips only an unchanged
notebook whose outputs are all there, reruns one that changed, failed, was interrupted or lost an output, never
promotes a failed notebook's results, and honours --only. Also the defaults of the command-line flags."""

import json

import nbformat
import pytest

from pubg_lib import paths, reproduce

NOTEBOOK = """
from pubg_lib.outputs import NotebookOutputs
outputs = NotebookOutputs("{name}", smoke, dict(seed=seed, fail=fail))
outputs.write_json("{name}.json", {{"seed": seed, "value": {value}}})
assert not fail, "the notebook's check failed"
outputs.promote()
"""


def _write(folder, name, value=1, fail_default=False):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f"seed = 0\nsmoke = False\nfail = {fail_default}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(NOTEBOOK.format(name=name, value=value))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A project with two tiny notebooks; results and figures go to tmp_path, not the committed folders."""
    notebooks, build = tmp_path / "notebooks", tmp_path / "build"
    notebooks.mkdir()
    _write(notebooks, "01_first")
    _write(notebooks, "02_second", value=2)
    places = {"BUILD": build, "RESULTS": tmp_path / "results", "FIGURES": tmp_path / "figures"}
    for name, place in places.items():  # here, and in the notebook kernels (they read the environment)
        monkeypatch.setattr(paths, name, place)
        monkeypatch.setenv(f"PUBG_{name}", str(place))
    monkeypatch.setattr(paths, "NOTEBOOKS", notebooks)
    monkeypatch.setenv("PUBG_NOTEBOOKS", str(notebooks))
    return tmp_path


def _result(project, name):
    return json.loads((project / "results" / f"{name}.json").read_text())


def test_runs_then_skips_what_is_unchanged(project):
    first = reproduce.run()
    assert first["executed"] == ["01_first.ipynb", "02_second.ipynb"]
    assert _result(project, "01_first")["value"] == 1
    assert reproduce.run()["executed"] == []
    assert reproduce.run(force=True)["executed"] == ["01_first.ipynb", "02_second.ipynb"]


def test_a_changed_notebook_runs_again(project):
    reproduce.run()
    _write(project / "notebooks", "02_second", value=22)
    assert reproduce.run()["executed"] == ["02_second.ipynb"]
    assert _result(project, "02_second")["value"] == 22


def test_a_deleted_output_makes_its_notebook_run_again(project):
    reproduce.run()
    (project / "results" / "01_first.json").unlink()
    assert reproduce.run()["executed"] == ["01_first.ipynb"]
    assert (project / "results" / "01_first.json").exists()


def test_a_failing_notebook_promotes_nothing_and_runs_again(project):
    reproduce.run()
    before = (project / "results" / "02_second.json").read_text()
    _write(project / "notebooks", "02_second", value=99, fail_default=True)
    with pytest.raises(SystemExit, match="02_second.ipynb failed"):
        reproduce.run()
    assert (project / "results" / "02_second.json").read_text() == before  # the committed result is untouched
    assert (project / "build" / "notebooks" / "02_second.failed.ipynb").exists()
    _write(project / "notebooks", "02_second", value=99)
    assert reproduce.run()["executed"] == ["02_second.ipynb"]
    assert _result(project, "02_second")["value"] == 99
    assert not (project / "build" / "notebooks" / "02_second.failed.ipynb").exists()


def test_a_failure_after_success_is_not_taken_for_success(project):
    """The same notebook and parameters that once succeeded, failing now (a flaky check, a killed run), must not
    be skipped next time because the earlier success is still on record."""
    reproduce.run()
    state_path = project / "build" / "reproduce_state.json"
    recorded = json.loads(state_path.read_text())
    # simulate a run killed half-way: the runner forgets the success before executing
    from pubg_lib.outputs import manifest_path

    manifest_path("01_first", False).unlink()
    assert reproduce.run()["executed"] == ["01_first.ipynb"]
    assert json.loads(state_path.read_text()) == recorded


def test_only_runs_the_named_notebooks(project):
    assert reproduce.run(only=["02"])["executed"] == ["02_second.ipynb"]
    with pytest.raises(SystemExit, match="no notebook starts with"):
        reproduce.run(only=["09"])


def test_parameters_reach_the_notebook_and_count_as_a_change(project):
    reproduce.run()
    assert reproduce.run(extra={"01": {"seed": 3}})["executed"] == ["01_first.ipynb"]
    (variant,) = (project / "build" / "variants").glob("01_first-*")  # not the default: its own folder
    result = json.loads((variant / "results" / "01_first.json").read_text())
    assert result["seed"] == 3 and result["provenance"]["parameters"]["seed"] == 3


def test_smoke_results_never_touch_the_full_ones(project):
    reproduce.run()
    full = (project / "results" / "01_first.json").read_text()
    reproduce.run(smoke=True)
    assert (project / "results" / "01_first.json").read_text() == full
    assert (project / "build" / "smoke" / "results" / "01_first.json").exists()


# ---- command-line defaults ----------------------------------------------------------------------------------------
def test_reproduce_flags_default_to_the_safe_choice():
    ap_args = reproduce.build_parser().parse_args([])
    assert (
        not ap_args.smoke and not ap_args.force and not ap_args.sweep and ap_args.only is None and ap_args.param == []
    )


def test_unlearn_cli_defaults_never_overwrite_and_never_trust_remote_code(tmp_path, monkeypatch):
    from pubg_lib import cli

    args = cli.build_parser().parse_args(["--config", "x.json"])
    assert args.overwrite is False
    seen = {}

    class Loaded(Exception):
        pass

    def fake_load(id_or_path, **kwargs):
        seen.update(kwargs)
        raise Loaded

    monkeypatch.setattr(cli, "load_lvlm", fake_load)
    from pubg_lib.config import smoke_configs
    from pubg_lib.entities import EntityDataset

    folder = EntityDataset.from_world(smoke_configs()[0]).export(tmp_path / "photos")
    config = tmp_path / "run.json"
    config.write_text(
        json.dumps({"model": "m", "data": str(folder), "forget": ["p000"], "out_dir": str(tmp_path / "r")})
    )
    with pytest.raises(Loaded):
        cli.run_from_config(config)
    assert seen["trust_remote_code"] is False


def test_a_run_with_other_parameters_never_replaces_the_committed_results(project):
    """An exercise (`-p 01 seed=5`) is a variant: its results go to build/variants/, the committed ones stay."""
    reproduce.run()
    committed = (project / "results" / "01_first.json").read_bytes()
    record = reproduce.run(only=["01"], extra={"01": {"seed": 5}})
    assert record["executed"] == ["01_first.ipynb"]
    assert (project / "results" / "01_first.json").read_bytes() == committed
    (variant,) = (project / "build" / "variants").iterdir()
    assert variant.name.startswith("01_first-")
    assert json.loads((variant / "results" / "01_first.json").read_text())["seed"] == 5
    assert (variant / "01_first.ipynb").exists()
    # the default run's record is untouched: it is still skipped, its outputs all present
    assert reproduce.run()["executed"] == []
    # the same variant again is skipped too; the default value given explicitly is no variant
    assert reproduce.run(only=["01"], extra={"01": {"seed": 5}})["executed"] == []
    assert reproduce.run(only=["01"], extra={"01": {"seed": 0}})["executed"] == ["01_first.ipynb"]
    assert len(list((project / "build" / "variants").iterdir())) == 1
