"""Saved runs: the adapter, its dynamics and its record on disk; the run cache; the per-method settings file.

A run folder is a PEFT adapter folder that plain Hugging Face code loads as it stands
(`PeftModel.from_pretrained(base, run_dir)`): `adapter_config.json` (its base model named by hub id, or by a path
relative to the cache, never an absolute cache path), `adapter_model.safetensors`, a model card (`README.md`: what
was unlearned, by which method and settings), plus `dynamics.csv` and `run.json` (written last: it marks a finished
run, and records the adapter's SHA-256 and the base model's id and fingerprint). Folders are written aside and
swapped into place, so a reader never sees the adapter of one run beside the record of another.
`cached_run` keys runs by the unlearning data, every setting and the fingerprint of the unlearning code
(`cache.code_fingerprint`): change a loss and the run is trained again.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pandas as pd
from peft import PeftModel

from . import cache, paths
from .config import from_dict, to_dict
from .io import read_json, write_csv, write_json
from .methods import get_method
from .models import LVLM
from .unlearn import UnlearnConfig, UnlearnRun, unlearn

LAST_GOOD = "adapter_last_good"  # where a diverged run's last finite adapter is kept (the run is not finished)


class RunError(RuntimeError):
    """A saved run is incomplete or its files do not belong together."""


def refuse_finished_run(out_dir: Path, overwrite: bool) -> None:
    if (Path(out_dir) / "run.json").exists() and not overwrite:
        raise FileExistsError(f"{out_dir} holds a finished run; pass overwrite=True (--overwrite) to replace it")


def _adapter_hash(run_dir: Path) -> str:
    return hashlib.sha256((Path(run_dir) / "adapter_model.safetensors").read_bytes()).hexdigest()


def model_card(record: dict, base: str) -> str:
    """The README.md of a run folder: what was unlearned, how, and how to load it."""
    cfg = record["config"]
    settings = ", ".join(f"{k}={cfg[k]}" for k in ("learning_rate", "steps", "lam", "gamma", "lora_rank") if k in cfg)
    diagnostics = record.get("diagnostics", {})
    return "\n".join(
        [
            "---",
            "library_name: peft",
            "tags: [machine-unlearning, pubg, lora]",
            "---",
            f"# {record['method']} unlearning adapter",
            "",
            f"A LoRA adapter that makes `{base}` forget {len(record.get('forget', [])) or 'the'} person(s) "
            f"`{', '.join(record.get('forget', []))}` with **{record['method']}** "
            f"({get_method(record['method']).summary}), trained by the PUBG compendium (arXiv 2506.02541).",
            "",
            f"- settings: {settings}",
            f"- seed {record['seed']}; {record['wall_seconds']:.0f} s of training; collapsed: "
            f"{diagnostics.get('collapsed', 'not measured')}",
            f"- base model fingerprint: `{record.get('base_model_fingerprint', '')}`; data: `{record['data_hash']}`",
            "",
            "Load it with plain Hugging Face code:",
            "",
            "```python",
            "from peft import PeftModel",
            "model = PeftModel.from_pretrained(base_model, run_dir)  # base_model: the model named above",
            "```",
            "",
        ]
    )


def save_run(run: UnlearnRun, out_dir: Path) -> str:
    """Write the run into a fresh folder beside `out_dir`, then swap it into place; returns the adapter hash."""
    out_dir = Path(out_dir)
    digest = {}
    record, base = run.record, run.record["base_model"]

    def write(tmp: Path) -> None:
        run.lvlm.model.save_pretrained(tmp, safe_serialization=True)
        config = read_json(tmp / "adapter_config.json")
        write_json(tmp / "adapter_config.json", {**config, "base_model_name_or_path": base})
        (tmp / "README.md").write_text(model_card(record, base))
        write_csv(tmp / "dynamics.csv", run.dynamics)
        digest["sha256"] = _adapter_hash(tmp)
        write_json(tmp / "run.json", {**record, "adapter_sha256": digest["sha256"]})

    cache.build(out_dir, write)
    return digest["sha256"]


def train_and_save(
    lvlm: LVLM, dataset, data, cfg: UnlearnConfig, out_dir: Path | str, *, overwrite: bool = False, **kwargs
) -> UnlearnRun:
    """`unlearn.unlearn`, then the run saved to `out_dir` (by the main process only); a finished run there is
    refused unless `overwrite`. Keyword arguments go to `unlearn`."""
    out_dir = Path(out_dir)
    refuse_finished_run(out_dir, overwrite)
    run = unlearn(lvlm, dataset, data, cfg, last_good_dir=out_dir / LAST_GOOD, **kwargs)
    main = run.accelerator is None or run.accelerator.is_main_process
    if main:
        run.record["adapter_sha256"] = save_run(run, out_dir)
    if run.accelerator is not None:
        run.accelerator.wait_for_everyone()
    run.out_dir = out_dir
    return run


def load_run(base: LVLM, out_dir: Path | str) -> UnlearnRun:
    """Attach a saved adapter to a copy of the base model (the original is left untouched)."""
    out_dir = Path(out_dir)
    if not (out_dir / "run.json").exists():
        raise RunError(f"{out_dir} holds no finished run (no run.json)")
    record = read_json(out_dir / "run.json")
    if record.get("adapter_sha256") != _adapter_hash(out_dir):
        raise RunError(
            f"{out_dir}: the adapter does not match its run.json (a run overwritten half-way?); "
            "train it again with overwrite=True"
        )
    model = PeftModel.from_pretrained(copy.deepcopy(base.model), out_dir)
    model.eval()
    return UnlearnRun(
        LVLM(model, base.processor, f"{base.name}+{record['method']}"),
        pd.read_csv(out_dir / "dynamics.csv"),
        record,
        out_dir,
    )


def run_dir(data, cfg: UnlearnConfig) -> Path:
    """Where the run of `cfg` on `data` is cached: keyed by the unlearning data, every setting and the code."""
    key = cache.digest({"config": to_dict(cfg), "code": cache.code_fingerprint(__name__)})
    return paths.CACHE / "runs" / cache.digest(data.settings) / f"{cfg.method}-{key}"


def cached_run(
    lvlm: LVLM, dataset, data, cfg: UnlearnConfig, progress: bool = True, example_cache: dict | None = None
) -> UnlearnRun:
    """The run of `cfg` on `data`: loaded if an identical run (same settings and code) finished before, else
    trained and saved. A damaged cache entry is trained again rather than trusted."""
    out_dir = run_dir(data, cfg)
    if (out_dir / "run.json").exists():
        try:
            return load_run(lvlm, out_dir)
        except RunError:
            pass
    return train_and_save(
        lvlm, dataset, data, cfg, out_dir, overwrite=True, progress=progress, example_cache=example_cache
    )


def common_settings(path: Path | str | None = None, **common: object) -> UnlearnConfig:
    """The settings a settings file shares across methods (its `common` part, method PUBG) as one UnlearnConfig:
    the base a sweep varies. `common` keyword arguments override the file."""
    path = Path(path) if path is not None else paths.SETTINGS / "methods.json"
    return from_dict(UnlearnConfig, {**json.loads(path.read_text()).get("common", {}), **common, "method": "PUBG"})


def method_settings(
    path: Path | str | None = None, overrides: dict | None = None, **common: object
) -> dict[str, UnlearnConfig]:
    """Each method's UnlearnConfig from the versioned settings file (`data/settings/methods.json`).

    The file holds `common` settings and per-method `methods` entries (the specificity sweep writes the chosen
    ones). `common` keyword arguments override the file for every method (e.g. `steps=10` in a smoke run);
    `overrides={"PUBG": {"lam": 2.0}}` overrides one method. Unknown methods or settings are refused by name.
    """
    path = Path(path) if path is not None else paths.SETTINGS / "methods.json"
    spec = json.loads(path.read_text())
    out = {}
    overrides = overrides or {}
    for name in overrides:
        get_method(name)
    for name, values in spec["methods"].items():
        get_method(name)
        merged = {**spec.get("common", {}), **values, **common, **overrides.get(name, {}), "method": name}
        out[name] = from_dict(UnlearnConfig, merged)
    return out
