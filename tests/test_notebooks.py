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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_is_narrative_short_cells_and_figures_from_tables(path):
    """Cells are calls and figures, 20 lines at most (logic lives in pubg_lib); no figure is drawn by hand in a
    notebook: each goes through `figures.save` (its own table) or `plots.savefig` of a pubg_lib function."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert len(cell["source"]) <= 20, (path.name, len(cell["source"]), cell["source"][:2])
        src = "".join(cell["source"])
        assert "plt.subplots" not in src and "sns." not in src, (path.name, "a figure drawn in the notebook")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_method_keeps_its_colour_in_every_figure(path):
    """Every plot coloured by method takes its colours from plots.method_palette (one colour per method in every
    figure); no notebook hard-codes a list of colours."""
    import re

    for cell in json.loads(path.read_text())["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        for call in re.findall(r"sns\.\w+\((?:[^()]|\([^()]*\))*\)", src, flags=re.S):
            # lines or points coloured by method, or by a label naming a method or its variant (a bar per label,
            # x="label", names its bars on the axis instead)
            if 'hue="method"' in call or ('hue="label"' in call and 'x="label"' not in call):
                assert "palette=" in call, (path.name, call[:120])
        assert not re.search(r"color=\[\s*\"tab:", src), (path.name, "colours typed in the notebook")


def test_method_colours_are_fixed_and_variants_are_darker():
    from pubg_lib import plots

    a = plots.method_palette(["PUBG", "GA", "GA lr=0.003"])
    b = plots.method_palette(["GA lr=0.003", "original", "PUBG"])
    assert a["PUBG"] == b["PUBG"] == plots.METHOD_COLORS["PUBG"] and a["GA lr=0.003"] == b["GA lr=0.003"]
    assert sum(int(a["GA lr=0.003"][i : i + 2], 16) for i in (1, 3, 5)) < sum(
        int(a["GA"][i : i + 2], 16) for i in (1, 3, 5)
    )
    assert plots.method_color("PUBG, steps ∝ size") == plots.METHOD_COLORS["PUBG"]  # notebook 06's label
    assert len(set(plots.METHOD_COLORS.values())) == len(plots.METHOD_COLORS)
    with pytest.raises(KeyError, match="METHOD_COLORS"):
        plots.method_color("SOMETHING")


# The smoke pipeline in two halves, so that `make test`'s two workers share it (conftest puts them first, one on each
# worker); the second half's notebooks wait for the smoke world the first half (or any other test) pretrains.
PIPELINE_HALVES = {"01-05": ["01", "02", "03", "04", "05"], "06-09": ["06", "07", "08", "09"]}
# Notebook 08 attacks every model; in the test three methods (one that collapses, one that refuses, PUBG) and one
# short relearning attack check its plumbing (`make smoke` runs it whole) and keep the halves about even.
PIPELINE_EXTRA = {"06-09": {"08": {"methods": ["GA", "REJECT", "PUBG"], "relearn_steps": [2]}}}


def test_the_pipeline_halves_are_every_notebook_of_make_reproduce_in_order():
    from pubg_lib.reproduce import notebooks

    halves = [n for half in PIPELINE_HALVES.values() for n in half]
    assert halves == [p.name.split("_")[0] for p in notebooks()]


@pytest.mark.parametrize("half", [pytest.param(h, marks=pytest.mark.xdist_group(h)) for h in PIPELINE_HALVES])
def test_whole_pipeline_runs_in_smoke_mode(half):
    """Every numbered notebook of `make reproduce`, in order, with small parameters, through the same runner; the
    smoke world behaves as the full one (its filter keeps people the original names on photos it never saw)."""
    from pubg_lib.construction import DEFAULT_MIN_SHARE
    from pubg_lib.reproduce import notebooks, run

    only = PIPELINE_HALVES[half]
    record = run(smoke=True, force=True, only=only, extra=PIPELINE_EXTRA.get(half))
    ran = notebooks(only)
    assert list(record["notebook_seconds"]) == [p.name for p in ran]
    results, figures = paths.output_dirs(True)
    figure_names = {
        "01-05": (
            "01_recognition",
            "02_name_position",
            "03_gradients",
            "03_ga_rollout",
            "04_dynamics",
            "05_main_metrics",
            "05_behaviour_gallery",
        ),
        "06-09": (
            "06_seen_unseen",
            "06_paraphrases",
            "07_components",
            "07_lambda_pareto",
            "07_instructions",
            "07_lora_rank",
            "08_re_elicitation",
            "09_text_only_metrics",
            "09_text_only_behaviour",
        ),
    }[half]
    for name in figure_names:
        assert (figures / f"{name}.png").exists(), name
    if half == "01-05":
        first = json.loads((results / "01_dataset_construction.json").read_text())
        assert 0 <= first["unseen_recognition_accuracy"] <= 1
        # the filter is on and keeps enough people, and drops everyone the model was never told about; the original
        # leaks on its own training photos, and the instructed reference names nobody
        assert first["recognition_filter"]["min_share"] == DEFAULT_MIN_SHARE
        assert 3 <= first["kept_people"] <= first["known_people"]
        assert first["anonymous_dropped_share"] == first["never_trained_dropped_share"] == 1.0
        reference = json.loads((results / "02_reference_prompting.json").read_text())
        assert reference["private_leak_share"] >= 0.9 and reference["reference_name_free_share"] >= 0.9
        assert (paths.BUILD / "smoke" / "01_dataset_construction.html").exists()
        table = (results / "05_main_table.csv").read_text().splitlines()
        assert table[0].split(",")[0] == "method" and len(table) >= 3
    else:
        generalisation = json.loads((results / "06_generalization.json").read_text())
        assert generalisation["seeds"] and all(
            0 <= row["usr_unseen_mean"] <= 1 for row in generalisation["summary"].values()
        )
        ablations = json.loads((results / "07_ablations.json").read_text())
        assert set(ablations) >= {"terms", "lambda", "reference", "lora_rank", "claims"}
        attacked = json.loads((results / "re_elicitation.json").read_text())
        assert set(attacked["leaks"]) >= {"original", "PUBG"}
        assert set(attacked["leaks"]["PUBG"]) == {"forget", "stranger"}
        text = json.loads((results / "text_only.json").read_text())
        assert {"original", "GA", "NPO", "PUBG"} <= set(text["methods"])
        for row in text["methods"].values():  # the four numbers per method, each a share or a ratio
            assert 0 <= row["usr"] <= 1 and 0 <= row["degenerate_rate"] <= 1 and 0 <= row["hallucinated_rate"] <= 1
            assert row["retain_relative"] >= 0
        assert text["max_logit_difference_to_llava"] <= 1e-5
    _figures_inline_and_no_warnings(paths.BUILD / "smoke", ran)


@pytest.mark.slow
def test_the_sweep_notebooks_run_in_smoke_mode():
    """The notebooks `make sweep` runs (on request only: they choose the stored settings), with small parameters:
    both give every method the same number of trials, and the iso-privacy one says which methods reached the
    target, consistently with the val USR it chose them at."""
    from pubg_lib.reproduce import run

    record = run(
        smoke=True,
        force=True,
        sweep=True,
        only=["03b", "03c"],
        extra={"03b": {"n_trials": 2, "checkpoints": 1}, "03c": {"checkpoints": 2}},
    )
    assert list(record["notebook_seconds"]) == ["03b_specificity.ipynb", "03c_iso_privacy.ipynb"]
    results, figures = paths.output_dirs(True)
    spec = json.loads((results / "specificity.json").read_text())
    assert len({m["trials"] for m in spec["methods"].values()}) == 1  # every method had the same number of trials
    iso = json.loads((results / "03c_iso_privacy.json").read_text())
    assert {m["trials"] for m in iso["methods"].values()} == {2}
    assert all(m["reached"] == (m["val"]["usr"] >= iso["min_usr"]) for m in iso["methods"].values())
    for name in ("03b_tradeoff", "03c_forgetting_speed", "03c_cost_of_forgetting"):
        assert (figures / f"{name}.png").exists(), name
    _figures_inline_and_no_warnings(
        paths.BUILD / "smoke", [paths.NOTEBOOKS / "03b_specificity.ipynb", paths.NOTEBOOKS / "03c_iso_privacy.ipynb"]
    )


def _figures_inline_and_no_warnings(executed_dir, notebooks):
    """In every executed notebook, each cell that saves a figure shows it (an `image/png` output), and no output
    carries a warning or a progress bar."""
    for path in notebooks:
        nb = json.loads((executed_dir / path.name).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            outputs = cell.get("outputs", [])
            source = "".join(cell["source"])
            if "plots.savefig(" in source or "figures.save(" in source:
                assert any("image/png" in o.get("data", {}) for o in outputs), (path.name, cell["source"][:3])
            text = json.dumps(outputs)
            assert "Warning" not in text, (path.name, text[:500])
            assert "application/vnd.jupyter.widget-view+json" not in text, (path.name, "progress bar")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_has_a_type_papermill_can_show(path):
    import papermill as pm

    inferred = pm.inspect_notebook(str(path))
    assert inferred and all(p["inferred_type_name"] in TYPES for p in inferred.values()), inferred


TYPES = {"int", "float", "bool", "str", "list", "dict"}


def test_list_and_dict_parameters_work_from_the_plain_papermill_command_line(tmp_path):
    """`papermill ... -y 'methods: [GA, PUBG]'` hands the notebook a real list (and a dict for -y 'overrides: ...'),
    as the README documents; `--prepare-only` injects the parameters without running anything."""
    import ast
    import subprocess
    import sys

    out = tmp_path / "04.ipynb"
    yaml = "methods: [GA, PUBG]\noverrides: {PUBG: {lam: 2.0}}\nsteps: 10"
    cmd = [sys.executable, "-m", "papermill", str(paths.NOTEBOOKS / "04_training.ipynb"), str(out)]
    subprocess.run([*cmd, "--prepare-only", "-y", yaml], check=True, capture_output=True)
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse("".join(injected[0]["source"])).body
        if isinstance(node, ast.Assign)
    }
    assert values == {"methods": ["GA", "PUBG"], "overrides": {"PUBG": {"lam": 2.0}}, "steps": 10}
