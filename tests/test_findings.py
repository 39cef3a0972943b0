"""The README and the notebooks say what the stored results say: their numbers are rendered from data/results."""

import json
import re

import pytest

from pubg_lib import findings, paths

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]*.ipynb"))


def test_the_readme_results_section_is_rendered_from_the_stored_results():
    text = (paths.ROOT / "README.md").read_text()
    assert findings.section(text) == findings.render(), "run `python -m pubg_lib.findings` after a reproduction"


def test_no_number_is_typed_in_the_readme_prose_about_results():
    """Outside the rendered section, the README's prose states no measured rates (0.xx) or timings."""
    text = (paths.ROOT / "README.md").read_text()
    outside = text.replace(findings.section(text), "")
    assert not re.findall(r"\b0\.\d\d\b", outside)
    assert not re.findall(r"\b\d+(\.\d+)? ?(min|minutes)\b", outside)


@pytest.mark.parametrize("stem", sorted(findings.EXERCISES))
def test_every_exercise_command_runs_a_variant_of_its_notebook(stem):
    """Each exercise's command, as a reader pastes it in a shell, names its notebook and parameters it declares
    with their types (the runner plans it without error), and its values differ from the defaults, so that it
    writes build/variants/ and never the committed results."""
    import shlex

    from pubg_lib import outputs, reproduce

    assert 2 <= len(findings.EXERCISES[stem]) <= 3
    for _, command in findings.EXERCISES[stem]:
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "pubg_lib.reproduce"]
        args, extra = reproduce.parse_command(argv[3:])
        ((path, params),) = reproduce.plan_runs(args.only, args.smoke, extra, args.sweep)
        assert path.stem == stem
        assert outputs.variant_of(stem, params) is not None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_ends_with_what_we_found_read_from_the_results(path):
    nb = json.loads(path.read_text())
    last = [c for c in nb["cells"] if c["cell_type"] == "markdown"][-1]
    text = "".join(last["source"])
    assert text.startswith(findings.FOUND), f"{path.name}: the last markdown cell must be the findings"
    assert text == findings.notebook_findings(path.stem), "run `python -m pubg_lib.findings`"
    assert not text.endswith("run `make reproduce`)"), f"{path.name}: no stored results"


def test_numbers_in_a_findings_cell_come_from_its_results():
    """A number typed into the rendered text would not be in the results: every 0.xx in 01's findings is one of
    its stored rates, rounded."""
    stored = json.loads((paths.RESULTS / "01_dataset_construction.json").read_text())
    rounded = {f"{v:.2f}" for v in stored.values() if isinstance(v, float)}
    found = re.findall(r"\b[01]\.\d\d\b", findings.notebook_findings("01_dataset_construction"))
    assert found and set(found) <= rounded


def test_a_table_cell_carries_its_interval_when_the_row_has_one():
    row = {"usr": 0.96, "usr_ci_low": 0.9, "usr_ci_high": 1.0, "judge_inform": 4.2, "reached_target": True}
    assert findings._with_interval(row, "usr") == "0.96 [0.90, 1.00]"
    assert findings._with_interval(row, "judge_inform") == "4.20"
    assert findings._with_interval(row, "reached_target") == "yes"
    assert findings._with_interval({**row, "usr_ci_low": float("nan")}, "usr") == "0.96"
