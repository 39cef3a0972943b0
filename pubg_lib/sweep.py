"""Fair tuning: every method gets the same number of trials, judged on validation photos only.

A *trial* is one UnlearnConfig. It is trained once; at checkpoints during training the model answers the paper's
query on the **val** photos of the forget people and of the retain people, giving USR, retain recognition
(relative to the original model on the same photos), the degenerate rate and the informativeness (oracle judge,
1–5) of forget answers. Trials are cached one file each (keyed by settings and code), so an interrupted sweep
resumes. The test photos are never used here.

Two protocols (`PROTOCOLS`), each with its own grid, its own selection rule and its own settings file:

- **iso_privacy** (the paper's operating point, `data/settings/iso_privacy.json`): every method is asked to
  forget, then compared by what it says. Trials run `ISO_STEPS` steps (4× the paper's 30) at a constant learning
  rate, so that the checkpoint at step k *is* a k-step run; the rule (`choose_iso_privacy`) takes, among all
  checkpoints that reach val USR >= 0.95, the least damaging one: the highest relative retain recognition, then
  the most informative, then the fewest steps. A method that reaches it nowhere is reported as such, with its best
  USR (`reached` false).
- **tradeoff** (`data/settings/methods.json`): each method at its best privacy/retain trade-off (`choose`): the
  most informative final checkpoint with USR >= 0.95 and retain >= 0.9, else the best USR + retain. Kept as the
  specificity view; it lets a method that does not forget be chosen.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, paths
from .config import to_dict
from .evaluate import answer_table
from .io import read_json, write_json
from .methods import get_method
from .metrics import rates
from .models import LVLM
from .progress import tqdm
from .unlearn import UnlearnConfig, unlearn

TUNED = ("learning_rate", "steps", "gamma", "lam", "retain_loss", "lr_schedule")
RETAIN_ONLY = ("gamma", "retain_loss", "retain_batch")  # settings without meaning for a method with no retain term
GUIDANCE_ONLY = ("lam",)  # ... and without guidance
ISO_STEPS = 120  # 4x the paper's 30 steps
MIN_USR = 0.95


@dataclass(frozen=True)
class Protocol:
    """A tuning protocol: the grid (GA, without a retain weight, gets `ga_learning_rates` as its grid instead, so
    that every method has the same number of trials), settings every trial shares, and how many checkpoints are
    scored."""

    name: str
    grid: dict
    ga_learning_rates: tuple
    checkpoints: int
    fixed: dict = field(default_factory=dict)
    settings_file: str = "methods.json"


PROTOCOLS = {
    # λ stays at the settings file's value (its sweep is an ablation of notebook 07); the retain loss is NLL: in a
    # first sweep on the val photos every KL trial was dominated by an NLL trial of the same method.
    "tradeoff": Protocol(
        "tradeoff",
        {"learning_rate": [1e-3, 3e-3], "steps": [30, 60], "gamma": [2.0, 8.0]},
        (5e-4, 1e-3, 2e-3, 3e-3),
        checkpoints=3,
        settings_file="methods.json",
    ),
    # small γ included (a strong retain term can stop a method from forgetting at all), and the learning rate
    # across two decades; 12 trials each
    "iso_privacy": Protocol(
        "iso_privacy",
        {"learning_rate": [3e-4, 1e-3, 3e-3, 1e-2], "gamma": [0.5, 2.0, 8.0]},
        tuple(float(x) for x in np.geomspace(1e-4, 3e-2, 12).round(6)),
        checkpoints=4,
        fixed={"steps": ISO_STEPS, "lr_schedule": "constant"},
        settings_file="iso_privacy.json",
    ),
}


def method_grid(method: str, grid: dict[str, list] | None = None, protocol: str = "tradeoff") -> dict[str, list]:
    """The settings a method is tuned over: its protocol's grid (GA: the protocol's learning rates), or a custom
    `grid` naming any UnlearnConfig field (e.g. `lam`, `retain_loss`, `forget_batch`, `lora_targets`). Fields a
    method does not use are dropped for it (γ, the retain loss and batch without a retain term; λ without
    guidance)."""
    m = get_method(method)
    custom = grid is not None
    spec = PROTOCOLS[protocol]
    grid = dict(grid if custom else spec.grid)
    unknown = sorted(set(grid) - set(UnlearnConfig.__dataclass_fields__))
    if unknown:
        raise KeyError(f"grid names unknown UnlearnConfig field(s) {unknown}")
    if not m.uses_retain:
        grid = {k: v for k, v in grid.items() if k not in RETAIN_ONLY}
        if not custom:  # no retain weight to tune: a finer learning-rate axis instead, for the same trial count
            grid["learning_rate"] = list(spec.ga_learning_rates)
    if not m.uses_bg:
        grid = {k: v for k, v in grid.items() if k not in GUIDANCE_ONLY}
    return grid


def trial_configs(
    method: str,
    base: UnlearnConfig,
    n_trials: int,
    seed: int = 0,
    grid: dict[str, list] | None = None,
    protocol: str = "tradeoff",
) -> list[UnlearnConfig]:
    """`n_trials` settings from the method's grid: the whole grid if it has exactly that many, else a seeded
    sample (a grid smaller than `n_trials` is refused, so that every method gets the same budget)."""
    grid = method_grid(method, grid, protocol)
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if len(combos) < n_trials:
        raise ValueError(f"{method}'s grid has {len(combos)} settings, fewer than n_trials={n_trials}")
    rng = np.random.default_rng(seed)
    picked = [combos[i] for i in sorted(rng.choice(len(combos), n_trials, replace=False))]
    fixed = PROTOCOLS[protocol].fixed
    return [
        replace(base, method=method, **fixed, **{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
        for c in picked
    ]


def selection_photos(dataset, split, retain_per_person: int | None = None) -> tuple[list[str], list[str]]:
    """Forget and retain photos used for selection: the val split only (at most `retain_per_person` val photos of
    each retain person, to keep long sweeps affordable; every forget val photo)."""
    forget = dataset.photos_of(split.forget, ["val"])["photo_id"].tolist()
    retain = dataset.photos_of(split.retain, ["val"])
    if retain_per_person is not None:
        retain = retain.groupby("person_id", sort=False).head(retain_per_person)
    return forget, retain["photo_id"].tolist()


def score(lvlm, dataset, forget_ids, retain_ids, original_retain: float, progress: bool = False) -> dict:
    """Forget USR/leak/degenerate/informativeness (1–5) and retain recognition (absolute and relative)."""
    f = answer_table(lvlm, dataset, forget_ids, progress=progress)
    r = answer_table(lvlm, dataset, retain_ids, progress=progress)
    retain = rates.recognition(r)
    return {
        "usr": rates.usr(f),
        "forget_names_person": rates.recognition(f),
        "degenerate": rates.behaviour_rate(f, "degenerate"),
        "informativeness": rates.informativeness(f),
        "retain_recognition": retain,
        "retain_recognition_relative": rates.retain_relative(retain, original_retain),
    }


def trial_path(data, cfg: UnlearnConfig) -> Path:
    """A trial's cache file: keyed by the unlearning data, every setting and the code of the sweep (which includes
    the loop, the losses and the scoring)."""
    key = cache.digest({"config": to_dict(cfg), "code": cache.code_fingerprint(__name__)})
    return paths.CACHE / "sweeps" / cache.digest(data.settings) / f"{cfg.method}-{key}.json"


SCORE_COLUMNS = [
    "step",
    "usr",
    "forget_names_person",
    "degenerate",
    "informativeness",
    "retain_recognition",
    "retain_recognition_relative",
]


def run_trial(
    lvlm,
    dataset,
    data,
    cfg: UnlearnConfig,
    forget_ids,
    retain_ids,
    original_retain: float,
    checkpoints: int = 3,
    use_cache: bool = True,
) -> pd.DataFrame:
    """Train one trial, scoring it at `checkpoints` evenly spaced steps (the last one at the end). Cached as JSON."""
    path = trial_path(data, cfg)
    if use_cache and path.exists():
        record = read_json(path)
        return pd.DataFrame(record["rows"])[record["columns"]]
    marks = {int(round(cfg.steps * k / checkpoints)) for k in range(1, checkpoints + 1)}

    def at_checkpoint(step, model):
        if step in marks:
            return score(LVLM(model, lvlm.processor), dataset, forget_ids, retain_ids, original_retain)
        return {}

    run = unlearn(lvlm, dataset, data, cfg, progress=False, step_callback=at_checkpoint)
    rows = run.dynamics[run.dynamics["step"].isin(marks)].reindex(columns=SCORE_COLUMNS)
    rows = rows.assign(
        method=cfg.method,
        trial=path.stem.split("-", 1)[1],
        final=rows["step"] == cfg.steps,
        collapsed=run.record["diagnostics"]["collapsed"],
        **{f"cfg_{k}": v for k, v in to_dict(cfg).items() if k in TUNED},
    )
    write_json(
        path,
        {
            "config": to_dict(cfg),
            "forget_photos": list(forget_ids),
            "retain_photos": list(retain_ids),
            "columns": list(rows.columns),
            "rows": rows.to_dict("records"),
        },
    )
    return rows


def sweep(
    lvlm,
    dataset,
    data,
    split,
    base: UnlearnConfig,
    methods,
    n_trials: int = 8,
    checkpoints: int | None = None,
    seed: int = 0,
    grid: dict[str, list] | None = None,
    progress: bool = True,
    protocol: str = "tradeoff",
    retain_per_person: int | None = None,
) -> pd.DataFrame:
    """Every method × `n_trials` trials of its protocol's grid; one row per (trial, checkpoint)."""
    checkpoints = checkpoints or PROTOCOLS[protocol].checkpoints
    forget_ids, retain_ids = selection_photos(dataset, split, retain_per_person)
    original = score(lvlm, dataset, forget_ids, retain_ids, 1.0)["retain_recognition"]
    jobs = [cfg for m in methods for cfg in trial_configs(m, base, n_trials, seed, grid, protocol)]
    frames = [
        run_trial(lvlm, dataset, data, cfg, forget_ids, retain_ids, original, checkpoints)
        for cfg in tqdm(jobs, desc=f"{protocol} trials", disable=not progress)
    ]
    return pd.concat(frames, ignore_index=True).assign(original_retain_recognition=original)


def choose(trials: pd.DataFrame, min_usr: float = MIN_USR, min_retain: float = 0.9) -> pd.DataFrame:
    """The trade-off rule (module docstring) on final checkpoints; one row per method."""
    final = trials[trials["final"]].copy()
    final["feasible"] = (final["usr"] >= min_usr) & (final["retain_recognition_relative"] >= min_retain)
    chosen = []
    for _, grp in final.groupby("method", sort=False):
        if grp["feasible"].any():
            order = ["informativeness", "retain_recognition_relative", "cfg_steps"]
            best = grp[grp["feasible"]].sort_values(order, ascending=[False, False, True]).iloc[0]
            rule = "feasible: most informative"
        else:
            tradeoff = grp["usr"].fillna(0) + grp["retain_recognition_relative"].fillna(0)
            best = grp.loc[tradeoff.idxmax()]
            rule = "none feasible: best USR + retain"
        chosen.append({**best.to_dict(), "rule": rule, "trials": grp["trial"].nunique()})
    return pd.DataFrame(chosen).set_index("method")


def choose_iso_privacy(trials: pd.DataFrame, min_usr: float = MIN_USR) -> pd.DataFrame:
    """The iso-privacy rule (module docstring) over every checkpoint; one row per method with `reached`."""
    chosen = []
    for _, grp in trials.groupby("method", sort=False):
        feasible = grp[grp["usr"] >= min_usr]  # NaN is never >= anything
        if len(feasible):
            order = ["retain_recognition_relative", "informativeness", "step"]
            best = feasible.sort_values(order, ascending=[False, False, True], na_position="last").iloc[0]
            rule, reached = f"least damaging checkpoint with val USR >= {min_usr}", True
        else:
            best = grp.sort_values(["usr", "retain_recognition_relative"], ascending=False, na_position="last").iloc[0]
            rule, reached = f"never reached val USR {min_usr}: the checkpoint with the best USR", False
        chosen.append({**best.to_dict(), "rule": rule, "reached": reached, "trials": grp["trial"].nunique()})
    return pd.DataFrame(chosen).set_index("method")


def chosen_configs(data, chosen: pd.DataFrame) -> dict[str, dict]:
    """The full UnlearnConfig of each chosen trial (read back from its cache file), its steps set to the chosen
    checkpoint (with a constant learning rate, training that many steps is that checkpoint)."""
    folder = paths.CACHE / "sweeps" / cache.digest(data.settings)
    out = {}
    for method, row in chosen.iterrows():
        config = read_json(folder / f"{method}-{row['trial']}.json")["config"]
        if config["lr_schedule"] == "constant":
            config = {**config, "steps": int(row["step"])}
        out[method] = config
    return out


def write_settings(configs: dict[str, dict], note: str, path=None, extra: dict | None = None) -> None:
    """Store chosen settings in a versioned settings file the notebooks read (its common part kept); `extra` adds
    per-method facts (e.g. whether the privacy target was reached)."""
    path = path or paths.SETTINGS / "methods.json"
    spec = read_json(path)
    common = spec.get("common", {})
    methods = {m: {k: cfg[k] for k in TUNED if k in cfg and common.get(k) != cfg[k]} for m, cfg in configs.items()}
    methods = json.loads(json.dumps(methods))  # tuples as lists, as read back from the file
    if methods == spec.get("methods") and note == spec.get("note") and (extra or {}) == spec.get("selection", {}):
        return  # unchanged: keep the version (and the reproduction's skip-if-unchanged) as they are
    spec.update(methods=methods, note=note, version=int(spec.get("version", 0)) + 1)
    if extra:
        spec["selection"] = extra
    write_json(path, spec)
