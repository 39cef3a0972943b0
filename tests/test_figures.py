"""`make figures`: every figure is drawn from a stored table (a result table, or its own under `data/figures/`) and
redrawn from it the same as the committed one; PNG, PDF and SVG on request; the tables of notebook 03's figures
against their formulas."""

import json
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.testing.compare import compare_images

from pubg_lib import figures, gradients, paths, plots

matplotlib.use("Agg")


def _saved_by_notebooks() -> set[str]:
    """The figure names the notebooks save (`plots.savefig(..., "NAME", ...)` or `figures.save(outputs, "NAME",
    ...)`, a gallery's f-string expanded)."""
    names = set()
    for nb in sorted(paths.NOTEBOOKS.glob("*.ipynb")):
        source = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        for line in source.splitlines():
            if "savefig(" in line or "figures.save(" in line:
                for name in re.findall(r'f?"([0-9]{2}[a-z]?_[0-9a-z_]+(?:\{k\})?)"', line):
                    names |= {name.replace("{k}", str(k)) for k in (0, 1)} if "{k}" in name else {name}
    return names


def test_every_figure_is_drawn_from_a_stored_table():
    committed = {p.stem for p in paths.FIGURES.glob("*.png")}
    assert not set(figures.REDRAWN) & set(figures.FROM_OWN_TABLE)
    assert set(figures.REDRAWN) | set(figures.FROM_OWN_TABLE) == committed == _saved_by_notebooks()
    own = {p.stem for p in (paths.DATA / "figures").glob("*.csv")}
    # every figure of `make reproduce`'s notebooks has its committed table (the sweep notebooks' come with their
    # next `make sweep`), and no table lacks its figure
    assert (
        {f for f in figures.FROM_OWN_TABLE if not f.startswith(figures.ON_REQUEST)}
        <= own
        <= set(figures.FROM_OWN_TABLE)
    )


def test_redrawn_figures_match_the_committed_ones(tmp_path):
    report = figures.redraw(tmp_path, formats=("png",))
    assert set(report) == set(figures.REDRAWN) | set(figures.FROM_OWN_TABLE)
    missing = {name for name, status in report.items() if status != "redrawn"}
    assert all(name.startswith(figures.ON_REQUEST) and "run make sweep" in report[name] for name in missing), report
    for name in set(report) - missing:
        assert compare_images(str(paths.FIGURES / f"{name}.png"), str(tmp_path / f"{name}.png"), tol=2) is None, name


def test_a_figure_whose_table_is_missing_is_reported_not_drawn(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "REDRAWN", {"06_seen_unseen": (["no_such_table.csv"], lambda: 1 / 0)})
    monkeypatch.setattr(figures, "FROM_OWN_TABLE", {"99_nothing_stored": lambda table: 1 / 0})
    report = figures.redraw(tmp_path)
    assert report["06_seen_unseen"] == "not redrawn: ['no_such_table.csv'] not stored (run its notebook)"
    assert (
        report["99_nothing_stored"] == "not redrawn: data/figures/99_nothing_stored.csv not stored (run its notebook)"
    )
    assert not list(tmp_path.iterdir())


def test_save_stages_the_table_and_draws_the_figure_from_it_as_read_back(tmp_path, monkeypatch):
    """A notebook's figure is drawn from its table as `make figures` will read it (CSV round trip), and both wait in
    the staging area until the notebook promotes."""
    from pubg_lib.outputs import NotebookOutputs

    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    drawn = []

    def draw(table):
        drawn.append(table)
        return plots.forget_terms(table)

    monkeypatch.setitem(figures.FROM_OWN_TABLE, "03_forget_terms", draw)
    out = NotebookOutputs("03_loss_derivation", smoke=True)
    table = gradients.forget_term_curves(np.linspace(-3, 1, 5), betas=(0.5,))
    figures.save(out, "03_forget_terms", table)
    pd.testing.assert_frame_equal(drawn[0], pd.read_csv(out.figure_data_dir / "03_forget_terms.csv"))
    pd.testing.assert_frame_equal(drawn[0], table)
    assert (out.figures_dir / "03_forget_terms.png").exists()
    with pytest.raises(KeyError, match="no drawing function"):
        figures.save(out, "99_unknown", table)


def test_gradient_table_holds_the_descent_directions_of_its_formulas():
    p_s, p_t = np.array([0.7, 0.2, 0.05, 0.05]), np.array([0.1, 0.3, 0.4, 0.2])
    table = gradients.gradient_table(p_s, p_t, 0, lambda ids: [f"t{i}" for i in ids])
    assert table["token"].iloc[0] == "t0" and table["is_name"].tolist() == [True, False, False, False]
    name = table.iloc[0]
    assert name["ga"] == pytest.approx(0.7 - 1) and name["bg"] == pytest.approx(0.1 - 0.7)
    rest = table.iloc[1:]
    np.testing.assert_allclose(rest["ga"], rest["p_student"])  # GA raises every other logit by its probability
    np.testing.assert_allclose(rest["bg"], rest["p_teacher"] - rest["p_student"])


def test_rollout_table_keeps_all_the_mass_and_the_name_only_falls():
    rollout = gradients.ga_rollout(np.log([0.9, 0.05, 0.03, 0.01, 0.01]), 0, 1.0, 40)
    table = gradients.rollout_table(rollout, 0, lambda ids: [f"t{i}" for i in ids], 1.0)
    assert table.groupby("step")["probability"].sum().to_numpy() == pytest.approx(1.0)
    assert table.loc[table["line"] == "runner-up 1", "token"].iloc[0] == "t1"  # the likeliest other token
    name = table[table["line"] == "name"]["probability"].to_numpy()
    assert (np.diff(name) <= 1e-12).all() and name[-1] < name[0]


def test_forget_term_curves_ga_is_the_log_ratio_and_npo_is_bounded_below_by_zero():
    x = np.linspace(-30, 5, 50)
    table = gradients.forget_term_curves(x, betas=(0.1, 1.0))
    ga = table[table["term"].str.startswith("GA")]["loss"].to_numpy()
    np.testing.assert_allclose(ga, x)
    npo = table[table["term"].str.startswith("NPO")]
    assert (npo["loss"] >= 0).all()
    assert npo.groupby("term")["loss"].apply(lambda s: s.is_monotonic_increasing).all()


def test_sweep_table_splits_back_into_the_trials_and_the_chosen():
    trials = pd.DataFrame(
        {
            "method": ["GA", "GA", "PUBG"],
            "trial": ["a", "a", "b"],
            "step": [5, 10, 10],
            "usr": [0.5, 0.96, 1.0],
            "retain_recognition_relative": [1.0, 0.8, 0.97],
        }
    )
    chosen = trials.iloc[[1, 2]].set_index("method", drop=False).assign(reached=[True, True])
    table = figures.sweep_table(trials, chosen, min_usr=0.95)
    back_trials, back_chosen = plots._trials_and_chosen(pd.read_csv(_csv(table)))
    assert len(back_trials) == 3 and back_chosen.index.tolist() == ["GA", "PUBG"]
    assert back_chosen["reached"].tolist() == [True, True] and table["min_usr"].eq(0.95).all()
    assert "PUBG keeps the most" in plots.cost_of_forgetting(pd.read_csv(_csv(table))).axes[0].get_title()


def _csv(table):
    import io

    return io.StringIO(table.to_csv(index=False))


def test_savefig_writes_each_format_without_a_date_and_refuses_an_extension(tmp_path):
    import matplotlib.pyplot as plt

    def figure():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return fig

    plots.savefig(figure(), "f", tmp_path, formats=("png", "pdf", "svg"))
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF") and b"<svg" in (tmp_path / "f.svg").read_bytes()
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    plots.savefig(figure(), "f", tmp_path, formats=("png", "pdf", "svg"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first  # the same figure, the same bytes
    with pytest.raises(ValueError, match="without an extension"):
        plots.savefig(figure(), "x.pdf", tmp_path)
    with pytest.raises(ValueError, match="unknown figure formats"):
        plots.savefig(figure(), "x", tmp_path, formats=("jpg",))
