"""Every path the compendium uses is spelled here and nowhere else.

Environment variables move the writable places (for tests, and for runs that must not touch the committed
results); notebook kernels started by the runner inherit them:
`PUBG_BUILD` (executed notebooks, staging, state), `PUBG_CACHE` (models, runs, teacher caches),
`PUBG_RESULTS` and `PUBG_FIGURES` (the committed headline numbers and figures), `PUBG_NOTEBOOKS` (the notebooks
whose declared parameters are the defaults).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
RESULTS = Path(os.environ.get("PUBG_RESULTS", DATA / "results"))
SETTINGS = DATA / "settings"
FIGURES = Path(os.environ.get("PUBG_FIGURES", ROOT / "figures"))
NOTEBOOKS = Path(os.environ.get("PUBG_NOTEBOOKS", ROOT / "notebooks"))
BUILD = Path(os.environ.get("PUBG_BUILD", ROOT / "build"))
# Big artefacts rebuilt by code (ignored by git). PUBG_CACHE overrides it, e.g. for tests.
CACHE = Path(os.environ.get("PUBG_CACHE", BUILD / "cache"))


def output_dirs(smoke: bool, variant: str | None = None) -> tuple[Path, Path]:
    """Where a notebook's headline numbers and figures end up (after `outputs.NotebookOutputs.promote`).

    Full runs with the notebook's default parameters write the committed `data/results/` and `figures/`; a full
    run with other parameters (a `variant`, `outputs.variant_of`) writes its own folder under `build/variants/`;
    smoke runs write under `build/smoke/`: neither can replace a finished result.
    """
    if smoke:
        base = BUILD / "smoke"
        return base / "results", base / "figures"
    if variant:
        return variant_dir(variant) / "results", variant_dir(variant) / "figures"
    return RESULTS, FIGURES


def variant_dir(variant: str) -> Path:
    """The folder of a full run with non-default parameters: its results, figures and executed notebook."""
    return BUILD / "variants" / variant


def cache_dir(*parts: str) -> Path:
    path = CACHE.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
