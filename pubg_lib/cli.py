"""The command line of the real-model path: unlearn people from any LVLM by Hugging Face id or local path, on a
folder of photos, as a JSON run config describes (see `configs/`).

    python -m pubg_lib.cli --config configs/llava-1.6-mistral-7b.json     (also: python -m pubg_lib.unlearn ...)
    accelerate launch --multi_gpu --num_processes 4 -m pubg_lib.cli --config ...

Everything in the config is checked before any model loads: unknown or missing keys, values of the wrong type (the
string "false" is not a boolean), unknown dtypes and instructions, people who do not exist or have no seen photo,
and a finished run in `out_dir` (refused unless --overwrite).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState

from . import prompts
from .config import ConfigError, from_dict
from .entities import EntityDataset, Split
from .models import load_lvlm
from .reference import build_unlearning_data
from .runs import refuse_finished_run, train_and_save
from .unlearn import UnlearnConfig, UnlearnRun

RUN_CONFIG_KEYS = {
    "model",
    "data",
    "forget",
    "retain",
    "out_dir",
    "dtype",
    "device_map",
    "topk",
    "instruction",
    "reference_sampling",
    "trust_remote_code",
    "unlearn",
}
DTYPES = ("float32", "float16", "bfloat16", "float64")


def _refuse_constant(path):
    def refuse(constant):
        raise ConfigError(f"{path}: {constant} is not a valid number")

    return refuse


def read_run_config(path: Path | str) -> tuple[dict, UnlearnConfig]:
    """The run config at `path` and its `unlearn` section as an UnlearnConfig. Unknown or missing keys, values of
    the wrong type (a string "false" is not a boolean), unknown dtypes and instructions, a non-positive `topk` and
    an empty forget list are refused by name, before any model is loaded."""
    try:
        spec = json.loads(Path(path).read_text(), parse_constant=_refuse_constant(path))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a run config is a JSON object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - RUN_CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known: {sorted(RUN_CONFIG_KEYS)}")
    for key in ("model", "data", "forget", "out_dir"):
        if key not in spec:
            raise ConfigError(f"{path}: missing required key {key!r}")

    def expect(key, ok: bool, what: str):
        if key in spec and not ok:
            raise ConfigError(f"{path}: {key!r} must be {what}, got {type(spec[key]).__name__} {spec[key]!r}")

    for key in ("model", "data", "out_dir"):
        expect(key, isinstance(spec.get(key), str) and bool(spec.get(key)), "a non-empty string")
    for key in ("forget", "retain"):
        expect(
            key,
            isinstance(spec.get(key), list) and all(isinstance(p, str) for p in spec.get(key)),
            "a list of person ids (strings)",
        )
    if not spec["forget"]:
        raise ConfigError(f"{path}: 'forget' is empty: name at least one person to forget")
    for key in ("reference_sampling", "trust_remote_code"):
        expect(key, isinstance(spec.get(key), bool), "true or false (a JSON boolean, not a string)")
    expect("dtype", spec.get("dtype") is None or spec.get("dtype") in DTYPES, f"one of {list(DTYPES)} or null")
    topk = spec.get("topk")
    expect(
        "topk",
        topk is None or (isinstance(topk, int) and not isinstance(topk, bool) and topk > 0),
        "a positive integer or null",
    )
    expect(
        "device_map",
        spec.get("device_map") is None or isinstance(spec.get("device_map"), (str, dict)),
        'a string such as "auto", an object, or null',
    )
    expect("instruction", spec.get("instruction") in prompts.INSTRUCTIONS, f"one of {sorted(prompts.INSTRUCTIONS)}")
    expect("unlearn", isinstance(spec.get("unlearn"), dict), "an object of UnlearnConfig settings")
    return spec, from_dict(UnlearnConfig, spec.get("unlearn", {}))


def run_from_config(path: Path | str, overwrite: bool = False, progress: bool = True) -> UnlearnRun:
    """Unlearn a model by id or path on a folder of photos, as a JSON config describes (see `configs/`).

    Keys: `model` (hub id or local path), `data` (a folder in the layout of `entities.EntityDataset.from_folder`),
    `forget` (person ids), optional `retain` (default: everybody else), `out_dir`, `dtype` ("bfloat16", ...),
    `device_map`, `topk` (teacher cache size; needed for large vocabularies), `instruction`, `reference_sampling`,
    `trust_remote_code` (false unless you ask for it), and `unlearn` (UnlearnConfig fields).

    Under `accelerate launch --num_processes N` each process holds a whole copy of the model on its own device
    (so `device_map` must be left out), the main process builds the reference data first and the others read it
    from the cache, and each step's batch is split across the processes.
    """
    spec, cfg = read_run_config(path)
    refuse_finished_run(Path(spec["out_dir"]), overwrite)  # before hours of loading and reference building
    dataset = EntityDataset.from_folder(spec["data"])
    retain = spec.get("retain") or [p for p in dataset.people["person_id"] if p not in set(spec["forget"])]
    split = Split(tuple(spec["forget"]), tuple(retain))
    split.check(dataset)  # unknown people, forget people without a seen photo: refused before the model loads
    accelerator = Accelerator()
    if accelerator.num_processes > 1 and spec.get("device_map"):
        raise ConfigError(
            f"{path}: 'device_map' shards one model over several devices; under "
            f"{accelerator.num_processes} processes each process holds a whole copy, so leave it out"
        )
    dtype = getattr(torch, spec["dtype"]) if spec.get("dtype") else None
    lvlm = load_lvlm(
        spec["model"],
        dtype=dtype,
        device_map=spec.get("device_map"),
        trust_remote_code=spec.get("trust_remote_code", False),
    )
    if not spec.get("device_map"):
        lvlm.model.to(accelerator.device)
    with accelerator.main_process_first():  # one process writes the reference cache, the others then read it
        data = build_unlearning_data(
            lvlm,
            dataset,
            split,
            model_id=str(spec["model"]),
            instruction_name=spec.get("instruction", prompts.DEFAULT_INSTRUCTION),
            reference_sampling=spec.get("reference_sampling", False),
            topk=spec.get("topk"),
            seed=cfg.seed,
            progress=progress and accelerator.is_main_process,
        )
    return train_and_save(
        lvlm,
        dataset,
        data,
        cfg,
        spec["out_dir"],
        overwrite=overwrite,
        copy_model=False,
        progress=progress,
        accelerator=accelerator,
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Unlearn people from an LVLM with PUBG or a baseline (see configs/).")
    ap.add_argument("--config", required=True, help="a JSON run config")
    ap.add_argument("--overwrite", action="store_true", help="replace a finished run in out_dir")
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    run = run_from_config(args.config, overwrite=args.overwrite)
    if not PartialState().is_main_process:
        return
    last = run.dynamics.dropna(subset=["total"]).iloc[-1]
    print(
        f"{run.record['method']}: {len(run.dynamics) - 1} steps in {run.record['wall_seconds']:.0f} s, "
        f"final loss {last['total']:.4f}; adapter and run record in {run.out_dir}"
    )


if __name__ == "__main__":
    main()
