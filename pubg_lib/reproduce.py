"""Run every numbered notebook with papermill, in order, into build/ (the `make reproduce` command).

    python -m pubg_lib.reproduce                 # full run on the embedded default
    python -m pubg_lib.reproduce --smoke         # small parameters (minutes), results under build/smoke/
    python -m pubg_lib.reproduce --only 01 03    # a subset, by number prefix
    python -m pubg_lib.reproduce -p 04 steps=10  # a parameter for one notebook (checked before anything runs)
    python -m pubg_lib.reproduce --force         # rerun notebooks even if nothing they depend on changed
    python -m pubg_lib.reproduce --sweep         # also rerun the sweeps (03b trade-off, 03c iso-privacy), which
                                                 # rewrite the committed settings in data/settings/

A notebook is skipped when its source, its parameters and the package sources are unchanged since its last
successful run (recorded in build/reproduce_state.json); `--force` reruns it. The first failing notebook stops the
run with its name and the failing cell. Each executed notebook is also written as HTML for reading.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from . import paths
from .io import read_json, write_json
from .notebook_parameters import ParameterError, check_parameters, parse_assignment
from .outputs import manifest_path, promoted_outputs_present, variant_of
from .provenance import environment

# Notebooks that rewrite committed settings run only when asked (--sweep, or named with --only): a plain
# reproduction uses the settings already chosen and stored in data/settings/.
ON_REQUEST = ("03b_specificity.ipynb", "03c_iso_privacy.ipynb")


def notebooks(only: list[str] | None = None, sweep: bool = False) -> list[Path]:
    found = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]*.ipynb"))
    if not sweep and not only:
        found = [p for p in found if p.name not in ON_REQUEST]
    if only:  # by the number before the first underscore: "03" is not "03b"
        found = [p for p in found if p.name.split("_")[0] in only]
        missing = [o for o in only if not any(p.name.split("_")[0] == o for p in found)]
        if missing:
            raise SystemExit(f"no notebook starts with {missing}")
    return found


def _package_hash() -> str:
    h = hashlib.sha256()
    for p in sorted((paths.ROOT / "pubg_lib").rglob("*.py")):
        h.update(p.read_bytes())
    for p in sorted(paths.SETTINGS.glob("*.json")):
        h.update(p.read_bytes())
    return h.hexdigest()


def _fingerprint(path: Path, params: dict) -> str:
    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(_package_hash().encode())
    return h.hexdigest()


def _failing_cell(nb_path: Path) -> str:
    try:
        nb = json.loads(nb_path.read_text())
    except Exception:  # noqa: BLE001 - best effort for the message
        return "unknown cell"
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                src = "".join(cell.get("source", "")).strip().splitlines()
                return f"cell {i} ({src[0][:80] if src else ''}): {out.get('ename')}: {out.get('evalue')}"
    return "unknown cell"


def write_html(nb_path: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(nb_path, as_version=4))
    html = nb_path.with_suffix(".html")
    html.write_text(body)
    return html


def plan_runs(
    only=None, smoke: bool = False, extra: dict | None = None, sweep: bool = False
) -> list[tuple[Path, dict]]:
    """The notebooks to run, in order, each with its parameters, all checked before anything runs: `-p` for a
    notebook that will not run, `smoke` given with `-p` (it is `--smoke`'s alone: a smoke run must never write the
    committed results, nor a full run the smoke ones), unknown names and wrong types are refused."""
    extra = extra or {}
    todo = notebooks(only, sweep)
    if sweep:  # the sweep chooses the settings the other notebooks use: run it first
        todo.sort(key=lambda p: p.name not in ON_REQUEST)
    running = {nb.name.split("_")[0]: nb for nb in todo}
    idle = sorted(set(extra) - set(running))
    if idle:
        raise ParameterError(
            f"parameters given for notebook(s) {idle}, which this run does not execute "
            f"(it runs {sorted(running)}; add them with --only)"
        )
    plan = []
    for prefix, nb in running.items():
        given = extra.get(prefix, {})
        if "smoke" in given:
            raise ParameterError("'smoke' is set by --smoke, not by -p (full and smoke runs write to different places)")
        params = {**({"smoke": True} if smoke else {}), **given}
        check_parameters(nb, params)
        plan.append((nb, params))
    return plan


@contextlib.contextmanager
def _kernel_environment(**variables):
    """Environment variables for the kernel papermill starts (it inherits this process's environment), restored
    afterwards."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(only=None, smoke: bool = False, force: bool = False, extra: dict | None = None, sweep: bool = False) -> dict:
    """Execute the planned notebooks. Each runs into a temporary copy; only a run that finishes (its last cell
    promotes its outputs) replaces the executed copy and is recorded as done. A notebook is skipped only if its
    source, parameters and the package are unchanged since its last successful run *and* the outputs it promoted
    then are all still there; a failed or interrupted run is forgotten before it starts, so it runs again."""
    import papermill as pm
    from tqdm.auto import tqdm

    plan = plan_runs(only, smoke, extra, sweep)
    out_dir = paths.BUILD / ("smoke" if smoke else "notebooks")
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = paths.BUILD / "reproduce_state.json"
    state = read_json(state_path) if state_path.exists() else {}
    t0 = time.perf_counter()
    timings = {}
    for nb, params in tqdm(plan, desc="notebooks", unit="nb"):  # progress shows here, in the terminal
        variant = None if smoke else variant_of(nb.stem, params)  # other values than the defaults: own folder
        key = f"{'smoke' if smoke else 'full'}:{variant or nb.name}"
        fp = _fingerprint(nb, params)
        out = (paths.variant_dir(variant) if variant else out_dir) / nb.name
        out.parent.mkdir(parents=True, exist_ok=True)
        if not force and state.get(key) == fp and out.exists() and promoted_outputs_present(nb.stem, smoke, variant):
            tqdm.write(f"skip {nb.name} (unchanged, outputs present)")
            timings[nb.name] = 0.0
            continue
        state.pop(key, None)  # not done until it finishes: an interrupted run is rerun next time
        write_json(state_path, state)
        tqdm.write(
            f"run  {nb.name} {params or ''}" + (f" -> {out.parent} (not the committed results)" if variant else "")
        )
        running = out.parent / f".{nb.stem}.running.ipynb"
        failed = out.parent / f"{nb.stem}.failed.ipynb"
        t = time.perf_counter()
        try:
            with _kernel_environment(PUBG_PROGRESS="0", HF_HUB_DISABLE_PROGRESS_BARS="1"):  # not in the notebooks
                pm.execute_notebook(
                    str(nb),
                    str(running),
                    parameters=params,
                    cwd=str(paths.NOTEBOOKS),
                    kernel_name="python3",
                    progress_bar=False,
                )
        except pm.PapermillExecutionError as err:
            running.replace(failed)
            raise SystemExit(
                f"{nb.name} failed at {_failing_cell(failed)}\n(executed copy: {failed}; the results "
                "and figures it would have written were not promoted)"
            ) from err
        if not manifest_path(nb.stem, smoke, variant).exists():
            running.replace(failed)
            raise SystemExit(
                f"{nb.name} finished without promoting its outputs (its last cell must call "
                f"outputs.promote()); executed copy: {failed}"
            )
        timings[nb.name] = time.perf_counter() - t
        running.replace(out)
        failed.unlink(missing_ok=True)
        write_html(out)
        state[key] = fp
        write_json(state_path, state)
    total = time.perf_counter() - t0
    record = {
        "wall_seconds": total,
        "notebook_seconds": timings,
        "smoke": smoke,
        "forced": force,
        "executed": [k for k, v in timings.items() if v > 0],
        "provenance": environment(),
    }
    if not smoke and not only and not extra:
        # Keep the last run that executed notebooks next to the latest run (which may have skipped them all).
        path = paths.RESULTS / "reproduce.json"
        previous = read_json(path) if path.exists() else {}
        history = {
            "last_run": record,
            "last_run_that_executed": record if record["executed"] else previous.get("last_run_that_executed"),
        }
        write_json(path, history)
    print(f"done in {total:.0f} s: " + ", ".join(f"{k[:3]} {v:.0f}s" for k, v in timings.items()))
    return record


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="small parameters; results under build/smoke/")
    ap.add_argument("--force", action="store_true", help="rerun notebooks even if unchanged")
    ap.add_argument("--only", nargs="+", help="notebook number prefixes to run, e.g. 01 04")
    ap.add_argument(
        "--sweep",
        action="store_true",
        help="rerun the sweeps (03b, 03c) first; they rewrite data/settings/methods.json and iso_privacy.json",
    )
    ap.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NN", "NAME=VALUE"),
        default=[],
        help="a parameter for notebook NN (repeatable)",
    )
    return ap


def parse_command(argv) -> tuple[argparse.Namespace, dict[str, dict]]:
    """The command line's flags, and its `-p NN name=value` assignments as {NN: {name: value}}."""
    args = build_parser().parse_args(argv)
    extra: dict[str, dict] = {}
    for nn, assignment in args.param:
        name, value = parse_assignment(assignment)
        extra.setdefault(nn, {})[name] = value
    return args, extra


def main(argv=None) -> None:
    try:
        args, extra = parse_command(argv)
        run(args.only, smoke=args.smoke, force=args.force, extra=extra, sweep=args.sweep)
    except ParameterError as err:
        raise SystemExit(f"parameter error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
