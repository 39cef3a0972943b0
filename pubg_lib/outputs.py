"""What a notebook writes, staged until its checks pass.

A notebook writes its headline numbers, figures and the tidy table of each figure into a staging folder under
`build/staging/`; its last cell, after the checks on those numbers, calls `promote()`, which copies them into
`data/results/`, `figures/` and `data/figures/` (or their smoke counterparts under `build/smoke/`) one file at a
time, atomically, and writes a manifest of what it promoted. A notebook that fails or is interrupted never reaches
`promote()`, so the committed results stay as they were; the runner (`reproduce`) reruns a notebook whose
manifest is missing or lists a file that no longer exists.

Only a full run with the notebook's **default** parameters promotes into the committed folders. A run with other
values (an exercise, `-p 04 steps=10`, papermill `-p`) is a *variant*: it promotes into its own folder,
`build/variants/<notebook>-<digest of the values that differ>/`, so that trying something never replaces the
results the README and the notebooks' findings are read from.

Every JSON result gets a `provenance` entry: the notebook, its parameters and the environment (package versions,
threads, CPU) that produced it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from . import paths
from .io import atomic_write_bytes, read_json, write_csv, write_json
from .notebook_parameters import declared_parameters
from .provenance import environment


def figure_data_dir(smoke: bool, variant: str | None = None) -> Path:
    """Where a notebook's figure tables end up: the committed `data/figures/` beside the committed `data/results/`,
    else a `figure_data/` folder beside the results (smoke runs, variants, a project moved by `PUBG_RESULTS`).
    (Spelled here, not in `paths`: every cache key fingerprints `paths.py`, and a new path there would retrain every
    cached model and run.)"""
    results, _ = paths.output_dirs(smoke, variant)
    return paths.DATA / "figures" if results == paths.DATA / "results" else results.parent / "figure_data"


class OutputsError(RuntimeError):
    """Nothing was staged, or a notebook's promoted outputs are incomplete."""


def variant_of(notebook: str, parameters: dict) -> str | None:
    """None if every parameter given has the notebook's declared default (or the notebook is not one of ours);
    else the variant's name, `<notebook>-<digest>`, the digest of the values that differ (`smoke` aside)."""
    path = paths.NOTEBOOKS / f"{notebook}.ipynb"
    if not path.exists():
        return None
    defaults = declared_parameters(path)
    differing = {k: v for k, v in parameters.items() if k != "smoke" and k in defaults and v != defaults[k]}
    if not differing:
        return None
    digest = hashlib.sha256(json.dumps(differing, sort_keys=True, default=repr).encode()).hexdigest()[:10]
    return f"{notebook}-{digest}"


def manifest_path(notebook: str, smoke: bool, variant: str | None = None) -> Path:
    if variant and not smoke:
        return paths.BUILD / "outputs" / "variants" / f"{variant}.json"
    return paths.BUILD / "outputs" / ("smoke" if smoke else "full") / f"{notebook}.json"


def promoted_outputs_present(notebook: str, smoke: bool, variant: str | None = None) -> bool:
    """True if the notebook's last promotion is recorded and every file it promoted still exists."""
    manifest = manifest_path(notebook, smoke, variant)
    if not manifest.exists():
        return False
    files = read_json(manifest).get("files", [])
    return bool(files) and all((paths.ROOT / f).exists() for f in files)


class NotebookOutputs:
    """The staging folders of one notebook run. `results_dir`, `figures_dir` and `figure_data_dir` are where the
    notebook writes (figures and their tables through `figures.save`); `promote()` (its last call) moves what is
    there to the final folders: the committed ones for the default parameters, the variant's own folder for any
    other values (`variant_of`)."""

    def __init__(self, notebook: str, smoke: bool, parameters: dict | None = None):
        self.notebook, self.smoke, self.parameters = notebook, smoke, dict(parameters or {})
        self.variant = None if smoke else variant_of(notebook, self.parameters)
        results, figures = paths.output_dirs(smoke, self.variant)
        final = (results, figures, figure_data_dir(smoke, self.variant))
        self.stage = paths.BUILD / "staging" / ("smoke" if smoke else "full") / (self.variant or notebook)
        shutil.rmtree(self.stage, ignore_errors=True)
        staged = [self.stage / kind for kind in ("results", "figures", "figure_data")]
        self.results_dir, self.figures_dir, self.figure_data_dir = staged
        self._final = dict(zip(staged, final))  # {staging folder: the folder its files are promoted into}
        for folder in staged:
            folder.mkdir(parents=True)
        # until promoted, this run has no outputs
        manifest_path(notebook, smoke, self.variant).unlink(missing_ok=True)
        if self.variant:
            print(
                f"Parameters differ from the notebook's defaults: results and figures go to "
                f"{paths.variant_dir(self.variant)}, not to the committed data/results/ and figures/."
            )

    def provenance(self) -> dict:
        return {"notebook": self.notebook, "parameters": self.parameters, "smoke": self.smoke, **environment()}

    def write_json(self, name: str, obj: dict) -> Path:
        """A JSON result with its provenance (strict JSON: NaN becomes null)."""
        return write_json(self.results_dir / name, {**obj, "provenance": self.provenance()})

    def write_csv(self, name: str, frame) -> Path:
        return write_csv(self.results_dir / name, frame)

    def write_figure_data(self, figure: str, frame) -> Path:
        """The tidy table a figure is drawn from (`data/figures/<figure>.csv` once promoted)."""
        return write_csv(self.figure_data_dir / f"{figure}.csv", frame)

    def staged(self) -> list[Path]:
        return sorted(p for p in self.stage.rglob("*") if p.is_file())

    def promote(self) -> list[str]:
        """Copy every staged file into place (each atomically) and record them; call it after the checks."""
        staged = self.staged()
        if not staged:
            raise OutputsError(f"{self.notebook} staged nothing to promote")
        done = []
        for path in staged:
            final = self._final[path.parent] / path.name
            atomic_write_bytes(final, path.read_bytes())
            done.append(str(final.relative_to(paths.ROOT)) if final.is_relative_to(paths.ROOT) else str(final))
        write_json(
            manifest_path(self.notebook, self.smoke, self.variant),
            {"notebook": self.notebook, "variant": self.variant, "files": done, "parameters": self.parameters},
        )
        shutil.rmtree(self.stage, ignore_errors=True)
        return done
