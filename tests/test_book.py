"""`make book`: the executed notebooks in reading order with their figures inline, linked to each other and to a
contents page with the results tables; a page with a broken image is caught in a real (headless) browser."""

import base64
import json
import re
import shutil
import subprocess

import pytest

from pubg_lib import book, paths

# A 1×1 PNG, as an executed cell's image/png output would hold it.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def executed(tmp_path):
    """Every notebook of the reading order as if executed: the first with a figure output."""
    folder = tmp_path / "executed"
    folder.mkdir()
    for k, path in enumerate(book.reading_order()):
        nb = json.loads(path.read_text())
        if k == 0:
            code = next(c for c in nb["cells"] if c["cell_type"] == "code")
            code["outputs"] = [
                {"output_type": "display_data", "data": {"image/png": base64.b64encode(PNG).decode()}, "metadata": {}}
            ]
        (folder / path.name).write_text(json.dumps(nb))
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "01_example.png").write_bytes(PNG)
    return folder, figures


def test_the_book_has_every_notebook_in_reading_order_with_its_figures(executed, tmp_path):
    folder, figures = executed
    index = book.build(folder, tmp_path / "book", paths.RESULTS, figures)
    page = index.read_text()
    order = [p.stem for p in book.reading_order()]
    assert re.findall(r'<li><a href="([^"]+)\.html">', page) == order
    assert order.index("03b_specificity") < order.index("03c_iso_privacy") < order.index("04_training")
    assert "The main table (notebook 05)" in page and "<table" in page  # the results, read from data/results
    assert 'src="figures/01_example.png"' in page and (tmp_path / "book" / "figures" / "01_example.png").exists()
    first = (tmp_path / "book" / f"{order[0]}.html").read_text()
    assert "data:image/png;base64," in first  # the figure is inline, not a path to a file left behind
    assert f'href="{order[1]}.html"' in first and 'href="index.html"' in first
    last = (tmp_path / "book" / f"{order[-1]}.html").read_text()
    assert f'href="{order[-2]}.html"' in last


def test_a_notebook_not_executed_is_named(executed, tmp_path):
    folder, figures = executed
    (folder / "03c_iso_privacy.ipynb").unlink()  # a sweep (make sweep only): named on the contents page
    index = book.build(folder, tmp_path / "book", paths.RESULTS, figures)
    assert "Not executed here (they run with <code>make sweep</code>): 03c_iso_privacy.ipynb" in index.read_text()
    assert 'href="03c_iso_privacy.html"' not in index.read_text()
    (folder / "05_failure_modes.ipynb").unlink()  # a notebook of make reproduce: no book
    with pytest.raises(book.BookError, match="05_failure_modes.ipynb"):
        book.build(folder, tmp_path / "other", paths.RESULTS, figures)
    assert not (tmp_path / "other" / "index.html").exists()


def _broken_images(page) -> int:
    """Load a page in headless Chromium and read the count of images that failed to load (set by the page)."""
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    return int(re.search(r"<title>broken-images:(\d+)</title>", dom).group(1))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed on this machine")
def test_the_book_opens_in_a_browser_without_a_broken_image(executed, tmp_path):
    folder, figures = executed
    index = book.build(folder, tmp_path / "book", paths.RESULTS, figures)
    assert _broken_images(index) == 0
    assert _broken_images(index.parent / f"{book.reading_order()[0].stem}.html") == 0
    (index.parent / "figures" / "01_example.png").unlink()  # the check sees a missing figure
    assert _broken_images(index) == 1
