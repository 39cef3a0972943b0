"""`make figures`: every figure drawn from a stored table is redrawn from it, the same as the committed one; every
other figure is named with the reason it is not; PNG, PDF and SVG on request."""

import json
import re

import matplotlib
import pytest
from matplotlib.testing.compare import compare_images

from pubg_lib import figures, paths, plots

matplotlib.use("Agg")


def _saved_by_notebooks() -> set[str]:
    """The figure names the notebooks save (`plots.savefig(..., "NAME", ...)`, a gallery's f-string expanded)."""
    names = set()
    for nb in sorted(paths.NOTEBOOKS.glob("*.ipynb")):
        source = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        for line in source.splitlines():
            if "savefig(" in line:
                for name in re.findall(r'f?"([0-9]{2}[a-z]?_[0-9a-z_]+(?:\{k\})?)"', line):
                    names |= {name.replace("{k}", str(k)) for k in (0, 1)} if "{k}" in name else {name}
    return names


def test_every_figure_is_either_redrawn_from_a_table_or_says_why_not():
    committed = {p.stem for p in paths.FIGURES.glob("*.png")}
    assert not set(figures.REDRAWN) & set(figures.NOT_REDRAWN)
    assert set(figures.REDRAWN) | set(figures.NOT_REDRAWN) == committed == _saved_by_notebooks()


def test_redrawn_figures_match_the_committed_ones(tmp_path):
    report = figures.redraw(tmp_path, formats=("png",))
    redrawn = [name for name, status in report.items() if status == "redrawn"]
    assert {"05_main_metrics", "06_seen_unseen", "07_components"} <= set(redrawn)
    for name in redrawn:
        assert compare_images(str(paths.FIGURES / f"{name}.png"), str(tmp_path / f"{name}.png"), tol=2) is None, name
    for name, status in report.items():
        assert status == "redrawn" or status.startswith("not redrawn: "), (name, status)


def test_a_figure_whose_table_is_missing_is_reported_not_drawn(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "REDRAWN", {"06_seen_unseen": (["no_such_table.csv"], lambda: 1 / 0)})
    report = figures.redraw(tmp_path)
    assert report["06_seen_unseen"] == "not redrawn: ['no_such_table.csv'] not stored (run its notebook)"
    assert not list(tmp_path.iterdir())


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
