"""Committed notebooks are clean, and each runs headlessly with papermill on small parameters."""
import json

import pytest

from pubg_lib import paths

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no numbered notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{path.name} has outputs"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


def run_notebook(name: str, tmp_path, **parameters):
    import papermill as pm

    out = tmp_path / name
    pm.execute_notebook(str(paths.NOTEBOOKS / name), str(out), parameters={"smoke": True, **parameters},
                        kernel_name="python3", cwd=str(paths.NOTEBOOKS), progress_bar=False)
    return json.loads(out.read_text())


def test_notebook_01_runs_in_smoke_mode(tmp_path):
    run_notebook("01_dataset_construction.ipynb", tmp_path)
    result = json.loads((paths.output_dirs(True)[0] / "01_dataset_construction.json").read_text())
    assert 0 <= result["unseen_recognition_accuracy"] <= 1
    assert (paths.output_dirs(True)[1] / "01_recognition.png").exists()
