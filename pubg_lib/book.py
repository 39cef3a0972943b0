"""The compendium as a static site to read without running anything (`make book`): the executed notebooks of the last
`make reproduce` as it rendered them to HTML with nbconvert (every figure inline), in reading order, each with
links to the previous and next notebook and the contents, and an index page with the contents, the results tables
and the figures. It builds offline from `build/notebooks/` (or `build/smoke/` with `--smoke`) into `build/book/`.

    python -m pubg_lib.book            # after make reproduce
    python -m pubg_lib.book --smoke    # after make smoke
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd

from . import paths
from .io import atomic_write_bytes
from .reproduce import notebooks, write_html


def _forget_leaks(table: pd.DataFrame) -> pd.DataFrame:
    forget = table[table["people"] == "forget"]
    return forget.pivot(index="method", columns="attack", values="leak_rate").reset_index()


# The result tables shown on the index page: {file in data/results: (caption, how the table is shown)}.
TABLES = {
    "05_main_table.csv": ("The main table (notebook 05): every method at iso-privacy, with 95% intervals", None),
    "05_tradeoff_table.csv": ("Each method at its best privacy/retain trade-off (notebook 05's second table)", None),
    "08_re_elicitation.csv": (
        "Re-elicitation (notebook 08): the forget people's leak rate under each attack (intervals in the CSV)",
        _forget_leaks,
    ),
    "09_text_only.csv": ("Text only (notebook 09): every method unlearning people by name, with 95% intervals", None),
}
# Counts broken images once the page has loaded (a headless browser reads the title).
BROKEN_IMAGES_SCRIPT = (
    "<script>window.addEventListener('load', () => { const broken = [...document.images].filter("
    "i => !i.complete || i.naturalWidth === 0).length; document.title = 'broken-images:' + broken; });</script>"
)


class BookError(RuntimeError):
    """The book cannot be built (e.g. a notebook has not been executed)."""


def reading_order() -> list[Path]:
    """Every notebook in the order a reader meets it: the numbered ones, the sweeps (03b, 03c) in their place."""
    return notebooks(sweep=True)


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "(untitled)"


def _nav(order: list[Path], k: int) -> str:
    links = ['<a href="index.html">contents</a>']
    if k > 0:
        links.insert(0, f'<a href="{order[k - 1].stem}.html">← {order[k - 1].stem}</a>')
    if k + 1 < len(order):
        links.append(f'<a href="{order[k + 1].stem}.html">{order[k + 1].stem} →</a>')
    return '<nav style="padding:8px;font-family:sans-serif">' + " · ".join(links) + "</nav>"


def _with_nav(page: str, nav: str) -> str:
    at = page.index(">", page.index("<body")) + 1
    end = page.rindex("</body>")
    return page[:at] + nav + page[at:end] + nav + BROKEN_IMAGES_SCRIPT + page[end:]


def build(executed: Path, out: Path, results: Path | None = None, figures: Path | None = None) -> Path:
    """Write the book of the executed notebooks in `executed` into `out` and return its index page. Every notebook
    of `make reproduce` must have been executed (a `BookError` names those that were not); the sweeps (03b, 03c)
    are in it where `make sweep` executed them, and named as not executed otherwise."""
    results = results or paths.RESULTS
    figures = figures or paths.FIGURES
    sweeps = {p.name for p in reading_order()} - {p.name for p in notebooks()}  # 03b, 03c: only make sweep runs them
    missing = [p.name for p in notebooks() if not (executed / p.name).exists()]
    if missing:
        raise BookError(f"not executed yet (run make reproduce): {missing} in {executed}")
    skipped = sorted(name for name in sweeps if not (executed / name).exists())
    order = [p for p in reading_order() if p.name not in skipped]
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for k, path in enumerate(order):
        executed_nb = executed / path.name
        nb = nbformat.read(executed_nb, as_version=4)
        page = executed_nb.with_suffix(".html")  # make reproduce renders each executed notebook once (write_html)
        if not page.exists() or page.stat().st_mtime < executed_nb.stat().st_mtime:
            write_html(executed_nb)  # figures are embedded (image/png outputs as data URIs)
        body = page.read_text()
        atomic_write_bytes(out / f"{path.stem}.html", _with_nav(body, _nav(order, k)).encode())
        entries.append(f'<li><a href="{path.stem}.html">{html.escape(_title(nb))}</a></li>')
    if (out / "figures").exists():
        shutil.rmtree(out / "figures")
    shutil.copytree(figures, out / "figures")
    tables = [
        f"<h3>{html.escape(caption)}</h3>"
        + (shown or (lambda t: t))(pd.read_csv(results / name)).round(3).to_html(index=False, na_rep="–")
        for name, (caption, shown) in TABLES.items()
        if (results / name).exists()
    ]
    gallery = [
        f'<figure><img src="figures/{p.name}" style="max-width:100%"><figcaption>{p.stem}</figcaption></figure>'
        for p in sorted((out / "figures").glob("*.png"))
    ]
    not_executed = f"<p>Not executed here (they run with <code>make sweep</code>): {', '.join(skipped)}.</p>"
    not_executed = not_executed if skipped else ""
    index = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>PUBG compendium</title></head>"
        "<body style='font-family:sans-serif;max-width:1100px;margin:auto'>"
        "<h1>PUBG: what an LVLM says after it unlearns a person</h1>"
        "<p>Post-Unlearning Behavior Guidance (<a href='https://arxiv.org/abs/2506.02541'>arXiv 2506.02541</a>), "
        "reproduced on an embedded world: the notebooks in reading order, executed, with every figure.</p>"
        "<h2>Contents</h2><ol>"
        + "".join(entries)
        + "</ol>"
        + not_executed
        + "<h2>Results</h2>"
        + "".join(tables)
        + "<h2>Figures</h2>"
        + "".join(gallery)
        + BROKEN_IMAGES_SCRIPT
        + "</body></html>"
    )
    atomic_write_bytes(out / "index.html", index.encode())
    record = {"pages": [p.stem for p in order], "not_executed": skipped}
    atomic_write_bytes(out / "book.json", json.dumps(record, indent=1).encode())
    return out / "index.html"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="the executed notebooks of make smoke (build/smoke/)")
    ap.add_argument("--out", type=Path, default=paths.BUILD / "book")
    args = ap.parse_args(argv)
    executed = paths.BUILD / ("smoke" if args.smoke else "notebooks")
    results, figures = paths.output_dirs(args.smoke)
    try:
        index = build(executed, args.out, results, figures)
    except BookError as e:
        raise SystemExit(str(e)) from None
    print(f"book written: {index}")


if __name__ == "__main__":
    main()
