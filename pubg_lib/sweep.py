"""Fair tuning for specificity: every method gets the same number of trials, judged on validation photos only.

A *trial* is one UnlearnConfig. It is trained once; at checkpoints during training (and at the end) the model
answers the paper's query on the **val** photos of the forget people and of the retain people, giving the forget
leak rate, USR, retain recognition (relative to the original model on the same photos), the degenerate rate and
the informativeness of forget answers. Trials are cached one file each, so an interrupted sweep resumes.

Selection rule (`choose`), the same for every method:
1. feasible trials reach USR >= `min_usr` (0.95) and relative retain recognition >= `min_retain` (0.9);
2. among feasible trials take the most informative (highest attribute accuracy on forget answers), ties broken by
   retain recognition, then by fewer steps;
3. if no trial is feasible, take the best trade-off: the highest USR + relative retain recognition.
The test photos are never used here; the chosen settings are evaluated on them afterwards (`evaluate_on_test`).
"""
from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import paths
from .config import fingerprint, to_dict
from .evaluate import answer_table
from .io import read_json, write_json
from .methods import get_method
from .reference import settings_key
from .unlearn import UnlearnConfig, unlearn

# The grid each method is tuned over: every method gets the same number of trials (its whole grid by default).
# GA has no retain weight to tune, so it gets a finer learning-rate axis instead. λ stays at the settings file's
# value here (its sweep is an ablation of notebook 07), and the retain loss is NLL: in a first sweep on the val
# photos (6 trials per method, the KL to the original model in the grid as well) every KL trial was dominated by an
# NLL trial of the same method.
GRID = {
    "learning_rate": [1e-3, 3e-3],
    "steps": [30, 60],
    "gamma": [2.0, 8.0],
}
GA_LEARNING_RATES = [5e-4, 1e-3, 2e-3, 3e-3]
TUNED = ("learning_rate", "steps", "gamma", "lam", "retain_loss")


RETAIN_ONLY = ("gamma", "retain_loss", "retain_batch")
GUIDANCE_ONLY = ("lam",)


def method_grid(method: str, grid: dict[str, list] | None = None) -> dict[str, list]:
    """The settings a method is tuned over. By default `GRID` (and `GA_LEARNING_RATES` for GA); a custom `grid`
    may name any UnlearnConfig field (e.g. `lam`, `retain_loss`, `forget_batch`, `lora_targets`). Fields a method
    does not use are dropped for it (γ, the retain loss and batch without a retain term; λ without guidance)."""
    m = get_method(method)
    custom = grid is not None
    grid = dict(grid if custom else GRID)
    unknown = sorted(set(grid) - set(UnlearnConfig.__dataclass_fields__))
    if unknown:
        raise KeyError(f"grid names unknown UnlearnConfig field(s) {unknown}")
    if not m.uses_retain:
        grid = {k: v for k, v in grid.items() if k not in RETAIN_ONLY}
        if not custom:  # GA: nothing else to tune, so a finer learning-rate axis
            grid["learning_rate"] = GA_LEARNING_RATES
    if not m.uses_bg:
        grid = {k: v for k, v in grid.items() if k not in GUIDANCE_ONLY}
    return grid


def trial_configs(method: str, base: UnlearnConfig, n_trials: int, seed: int = 0,
                  grid: dict[str, list] | None = None) -> list[UnlearnConfig]:
    """`n_trials` settings from the method's grid: the whole grid if it has exactly that many, else a seeded
    sample (a grid smaller than `n_trials` is refused, so that every method gets the same budget)."""
    grid = method_grid(method, grid)
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if len(combos) < n_trials:
        raise ValueError(f"{method}'s grid has {len(combos)} settings, fewer than n_trials={n_trials}")
    rng = np.random.default_rng(seed)
    picked = [combos[i] for i in sorted(rng.choice(len(combos), n_trials, replace=False))]
    return [replace(base, method=method, **{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
            for c in picked]


def selection_photos(dataset, split) -> tuple[list[str], list[str]]:
    """Forget and retain photos used for selection: the val split only."""
    forget = dataset.photos_of(split.forget, ["val"])["photo_id"].tolist()
    retain = dataset.photos_of(split.retain, ["val"])["photo_id"].tolist()
    return forget, retain


def score(lvlm, dataset, forget_ids, retain_ids, original_retain: float, progress: bool = False) -> dict:
    """Forget USR/leak/degenerate/informativeness and retain recognition (absolute and relative)."""
    f = answer_table(lvlm, dataset, forget_ids, progress=progress)
    r = answer_table(lvlm, dataset, retain_ids, progress=progress)
    retain = float(r["names_person"].mean())
    return {"usr": float((f["leaked_facts"] == "").mean()), "forget_names_person": float(f["names_person"].mean()),
            "degenerate": float(f["degenerate"].mean()),
            "informativeness": float(f["attribute_accuracy"].mean()) if "attribute_accuracy" in f else np.nan,
            "retain_recognition": retain,
            "retain_recognition_relative": retain / original_retain if original_retain > 0 else np.nan}


def run_trial(lvlm, dataset, data, cfg: UnlearnConfig, forget_ids, retain_ids, original_retain: float,
              checkpoints: int = 3, cache=True) -> pd.DataFrame:
    """Train one trial, scoring it at `checkpoints` evenly spaced steps and at the end. Cached as JSON."""
    folder = paths.CACHE / "sweeps" / settings_key(data.settings)
    path = folder / f"{cfg.method}-{fingerprint(cfg)}.json"
    if cache and path.exists():
        record = read_json(path)
        frame = pd.DataFrame(record["rows"])
        return frame[record["columns"]] if "columns" in record else frame
    marks = {int(round(cfg.steps * k / checkpoints)) for k in range(1, checkpoints + 1)}

    def at_checkpoint(step, model):
        if step in marks:
            from .models import LVLM

            return score(LVLM(model, lvlm.processor), dataset, forget_ids, retain_ids, original_retain)
        return {}

    run = unlearn(lvlm, dataset, data, cfg, progress=False, step_callback=at_checkpoint)
    rows = run.dynamics[run.dynamics["step"].isin(marks)].reindex(columns=[
        "step", "usr", "forget_names_person", "degenerate", "informativeness", "retain_recognition",
        "retain_recognition_relative"])
    rows = rows.assign(method=cfg.method, trial=fingerprint(cfg), final=rows["step"] == cfg.steps,
                       **{f"cfg_{k}": v for k, v in to_dict(cfg).items() if k in TUNED})
    write_json(path, {"config": to_dict(cfg), "forget_photos": list(forget_ids), "retain_photos": list(retain_ids),
                      "columns": list(rows.columns), "rows": rows.to_dict("records")})
    return rows


def sweep(lvlm, dataset, data, split, base: UnlearnConfig, methods, n_trials: int = 8, checkpoints: int = 3,
          seed: int = 0, grid: dict[str, list] | None = None, progress: bool = True) -> pd.DataFrame:
    """Every method × `n_trials` trials (from `method_grid(method, grid)`); one row per (trial, checkpoint)."""
    forget_ids, retain_ids = selection_photos(dataset, split)
    original = score(lvlm, dataset, forget_ids, retain_ids, 1.0)["retain_recognition"]
    jobs = [cfg for m in methods for cfg in trial_configs(m, base, n_trials, seed, grid)]
    frames = [run_trial(lvlm, dataset, data, cfg, forget_ids, retain_ids, original, checkpoints)
              for cfg in tqdm(jobs, desc="sweep trials", disable=not progress)]
    return pd.concat(frames, ignore_index=True).assign(original_retain_recognition=original)


def choose(trials: pd.DataFrame, min_usr: float = 0.95, min_retain: float = 0.9) -> pd.DataFrame:
    """Apply the selection rule (module docstring) to final checkpoints; one row per method."""
    final = trials[trials["final"]].copy()
    final["feasible"] = (final["usr"] >= min_usr) & (final["retain_recognition_relative"] >= min_retain)
    chosen = []
    for method, grp in final.groupby("method", sort=False):
        if grp["feasible"].any():
            best = grp[grp["feasible"]].sort_values(["informativeness", "retain_recognition_relative", "cfg_steps"],
                                                    ascending=[False, False, True]).iloc[0]
            rule = "feasible: most informative"
        else:
            tradeoff = grp["usr"].fillna(0) + grp["retain_recognition_relative"].fillna(0)
            best = grp.loc[tradeoff.idxmax()]
            rule = "none feasible: best USR + retain"
        chosen.append({**best.to_dict(), "rule": rule, "trials": len(grp)})
    return pd.DataFrame(chosen).set_index("method")


def chosen_configs(trials_dir_key: str, chosen: pd.DataFrame) -> dict[str, dict]:
    """The full UnlearnConfig of each chosen trial (read back from its cache file)."""
    out = {}
    for method, row in chosen.iterrows():
        rec = read_json(paths.CACHE / "sweeps" / trials_dir_key / f"{method}-{row['trial']}.json")
        out[method] = rec["config"]
    return out


def write_settings(configs: dict[str, dict], note: str, path=None) -> None:
    """Store chosen settings in the versioned settings file the notebooks read (common part kept)."""
    path = path or paths.SETTINGS / "methods.json"
    spec = read_json(path)
    common = spec.get("common", {})
    methods = {m: {k: cfg[k] for k in TUNED if common.get(k) != cfg[k]} for m, cfg in configs.items()}
    methods = json.loads(json.dumps(methods))  # tuples as lists, as read back from the file
    if methods == spec.get("methods") and note == spec.get("note"):
        return  # unchanged: keep the version (and the reproduction's skip-if-unchanged) as they are
    spec.update(methods=methods, note=note, version=int(spec.get("version", 0)) + 1)
    write_json(path, spec)
