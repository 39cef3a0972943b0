"""The paper's comparison: every method at its iso-privacy setting, judged by what it says afterwards.

Notebook 03c chose each method's setting (learning rate, γ, steps) on the first draw's val photos. A setting's
steps do not carry over to another forget set: the same learning rate forgets other people faster or slower.
`calibrate_steps` therefore keeps each method's γ and chooses its number of steps on each draw's own val photos
(one trial of `sweep.ISO_STEPS` steps scored at the protocol's checkpoints; the checkpoint with the highest val USR,
the least damaging among equals); where that leaves a val photo unforgotten, the method climbs a learning-rate
ladder (`LR_LADDER`, the same for every method) on that draw. Every method as close to full forgetting as it gets on
every draw, the paper's operating point, without a test photo being looked at.

`compare` trains (or loads) each method's run on several forget-set draws and scores it on the forget people's
unseen **test** photos (never used for training or for choosing settings), the retain people's test photos and
the strangers' (never-seen people's) test photos. `main_table` gives one row per method with a 95% bootstrap
interval for each rate (resampling draws, then photos within a draw) and its n; `paper_claims` states the paper's
claims on that table, each with its numbers and whether it holds here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from . import paths, sweep
from .construction import Construction
from .entities import make_splits
from .evaluate import score_tables, tfidf_scorer
from .io import read_json
from .metrics import rates
from .metrics.behaviour import BEHAVIOURS, is_refusal
from .reference import build_unlearning_data
from .runs import cached_run, method_settings
from .stats import bootstrap_interval
from .unlearn import UnlearnConfig

ISO_PRIVACY_SETTINGS = paths.SETTINGS / "iso_privacy.json"
# Per-answer columns of the main table: forget-side rates on the forget people's test photos, then retain-side.
FORGET_RATES = {
    "usr": lambda t: (t["leaked_facts"] == "").astype(float),
    "usr_name_only": lambda t: (~t["names_person"].astype(bool)).astype(float),
    "tfidf_similarity": lambda t: t["tfidf_similarity"],
    "clip_score": lambda t: t["clip_score"],
    "judge_inform": lambda t: t["judge_inform"],
    "judge_hall": lambda t: t["judge_hall"],
    "refusal_rate": lambda t: (t["behaviour"] == "refusal").astype(float),
    "degenerate_rate": lambda t: (t["behaviour"] == "degenerate").astype(float),
    "hallucinated_identity_rate": lambda t: (t["behaviour"] == "hallucinated_identity").astype(float),
    "grounded_rate": lambda t: (t["behaviour"] == "grounded_description").astype(float),
}
OTHER_RATES = {
    "retain_recognition": ("retain", lambda t: t["names_person"].astype(float)),
    "retain_refusal_rate": ("retain", lambda t: t["answer"].map(is_refusal).astype(float)),
    "stranger_refusal_rate": ("stranger", lambda t: t["answer"].map(is_refusal).astype(float)),
    "stranger_names_someone": ("stranger", lambda t: (t["names_person"] | t["names_other"]).astype(float)),
}


def iso_privacy_settings(**common) -> dict[str, UnlearnConfig]:
    """Each method's iso-privacy setting (`data/settings/iso_privacy.json`, written by the sweep)."""
    return method_settings(ISO_PRIVACY_SETTINGS, **common)


def iso_privacy_reached() -> dict[str, bool]:
    """Whether each method reached the privacy target on val photos when its setting was chosen."""
    return read_json(ISO_PRIVACY_SETTINGS).get("selection", {}).get("reached", {})


def draw_data(con: Construction, draw: int, n_forget: int = 5):
    """Forget-set draw `draw`: its split (the first `n_forget` people of the draw's permutation of the kept people,
    so draw `seed` is notebook 01's forget set of that size) and its unlearning data (the teacher's references)."""
    split = make_splits(con.kept, [n_forget], draw)[n_forget]
    data = build_unlearning_data(con.lvlm, con.dataset, split, model_id=str(con.model_dir), seed=draw, progress=False)
    return split, data


def draw_runs(con: Construction, settings: dict[str, UnlearnConfig], draw: int, n_forget: int = 5, progress=False):
    """The runs `compare` scores on one draw ({label: UnlearnRun}, each trained once and cached), with the draw's
    split and data: for looking closer at one draw (other queries, photos, galleries)."""
    split, data = draw_data(con, draw, n_forget)
    runs = {
        label: cached_run(con.lvlm, con.dataset, data, replace(cfg, seed=draw), progress=progress)
        for label, cfg in settings.items()
    }
    return split, data, runs


def choose_full_forgetting(trial: pd.DataFrame) -> pd.Series:
    """The checkpoint of one trial closest to full forgetting: the highest val USR, then the highest relative
    retain recognition, then the most informative, then the fewest steps (NaN scores last)."""
    order = ["usr", "retain_recognition_relative", "informativeness", "step"]
    return trial.sort_values(order, ascending=[False, False, False, True], na_position="last").iloc[0]


# Learning-rate multiples a method may climb on a draw where its iso-privacy setting does not forget every val photo
# within `sweep.ISO_STEPS` steps: 03c chose the rate on the first draw, and another forget set can be harder. The
# protocol aims for full forgetting (val USR 1.0): a draw's 20 val photos cannot tell 0.95 from 0.80 (GD reached
# val 0.95 on two draws at the lower rungs and scored 0.75 on their test photos), so rungs are tried in turn until
# one forgets every val photo; that rung is kept, else the lowest one that reached the target, else the best val
# USR. Every method has the same ladder.
LR_LADDER = (1.0, 3.0, 10.0)


def calibrate_steps(
    con: Construction,
    settings: dict[str, UnlearnConfig],
    draw: int,
    n_forget: int = 5,
    *,
    max_steps: int = sweep.ISO_STEPS,
    checkpoints: int | None = None,
    min_usr: float = sweep.MIN_USR,
    ladder=LR_LADDER,
) -> tuple[dict[str, UnlearnConfig], pd.DataFrame]:
    """Each setting with its number of steps (and, where it must climb `ladder`, its learning rate) chosen on this
    draw's val photos (module docstring): a trial of `max_steps` steps at a constant learning rate, scored at
    `checkpoints` evenly spaced steps (cached like the sweep's trials), and the step of `choose_full_forgetting`;
    short of val USR 1.0, the next rung's learning rate (`LR_LADDER`). Returns the calibrated settings (seeded
    with the draw, as `draw_runs` trains them) and one row per method: the chosen learning rate and step, its val
    scores, how many rungs it tried and whether it reached `min_usr`."""
    split, data = draw_data(con, draw, n_forget)
    forget_ids, retain_ids = sweep.selection_photos(con.dataset, split)
    original = sweep.score(con.lvlm, con.dataset, forget_ids, retain_ids, 1.0)["retain_recognition"]
    checkpoints = checkpoints or sweep.PROTOCOLS["iso_privacy"].checkpoints
    calibrated, rows = {}, []
    for label, cfg in settings.items():
        tried = []
        for factor in ladder:
            trial = replace(
                cfg, seed=draw, steps=max_steps, lr_schedule="constant", learning_rate=cfg.learning_rate * factor
            )
            scored = sweep.run_trial(con.lvlm, con.dataset, data, trial, forget_ids, retain_ids, original, checkpoints)
            tried.append((trial, choose_full_forgetting(scored)))
            if tried[-1][1]["usr"] >= 1.0:
                break
        full = [(t, b) for t, b in tried if b["usr"] >= 1.0]
        reaching = [(t, b) for t, b in tried if b["usr"] >= min_usr]
        best_usr = max(tried, key=lambda tb: (tb[1]["usr"], -tb[0].learning_rate))
        trial, best = (full or reaching or [best_usr])[0]
        calibrated[label] = replace(trial, steps=int(best["step"]))  # constant rate: k steps *is* checkpoint k
        rows.append(
            {
                "method": label,
                "draw": draw,
                "learning_rate": trial.learning_rate,
                "steps": int(best["step"]),
                "rungs": len(tried),
                "val_usr": float(best["usr"]),
                "val_retain_recognition_relative": float(best["retain_recognition_relative"]),
                "reached": bool(best["usr"] >= min_usr),
            }
        )
    return calibrated, pd.DataFrame(rows)


def calibrate_draws(
    con: Construction, settings: dict[str, UnlearnConfig], draws, n_forget: int = 5, **trial
) -> tuple[dict[int, dict[str, UnlearnConfig]], pd.DataFrame, dict[str, bool]]:
    """`calibrate_steps` on every draw (`trial`: its keyword arguments, e.g. shorter trials in smoke runs). Returns
    the per-draw settings for `compare(per_draw=...)`, the chosen steps (one row per method and draw) and whether
    each method reached the val target on every draw (`main_table(reached=...)`)."""
    calibration = {d: calibrate_steps(con, settings, d, n_forget, **trial) for d in draws}
    per_draw = {d: calibrated for d, (calibrated, _) in calibration.items()}
    steps = pd.concat([table for _, table in calibration.values()], ignore_index=True)
    return per_draw, steps, steps.groupby("method")["reached"].all().to_dict()


def compare(
    con: Construction,
    settings: dict[str, UnlearnConfig],
    draws=(0, 1, 2),
    n_forget: int = 5,
    *,
    clip=None,
    extra: dict[str, UnlearnConfig] | None = None,
    per_draw: dict[int, dict[str, UnlearnConfig]] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Answer tables of the original model and of every method's run on each draw, stacked: one row per answer
    with `method`, `draw` and `people` (forget, retain, stranger). `extra` adds runs under other labels (e.g. GA
    at a higher learning rate); `per_draw` replaces `settings` on the draws it names (e.g. by `calibrate_steps`)."""
    dataset, lvlm = con.dataset, con.lvlm
    tfidf = tfidf_scorer(dataset)
    never_seen = dataset.people.loc[dataset.people["role"] == "never_seen", "person_id"].tolist()
    frames = []
    for draw in draws:
        runs = {**(per_draw or {}).get(draw, settings), **(extra or {})}
        split, _, trained = draw_runs(con, runs, draw, n_forget, progress)
        forget_ids = dataset.photos_of(split.forget, ["test"])["photo_id"].tolist()
        retain_ids = dataset.photos_of(split.retain, ["test"])["photo_id"].tolist()
        # strangers: people the model never saw, and not in this draw's split (a filter that keeps everyone,
        # min_share 0, may put one there)
        strangers = [p for p in never_seen if p not in split.forget and p not in split.retain]
        stranger_ids = dataset.photos_of(strangers, ["test"])["photo_id"].tolist()
        models = {"original": lvlm, **{label: run.lvlm for label, run in trained.items()}}
        for label, model in models.items():
            # strangers are scored alongside the forget photos (the same scores), then told apart by person
            asked, retain = score_tables(model, dataset, forget_ids + stranger_ids, retain_ids, tfidf=tfidf, clip=clip)
            stranger = asked["person_id"].isin(strangers)
            for people, table in (("forget", asked[~stranger]), ("retain", retain), ("stranger", asked[stranger])):
                if len(table):
                    frames.append(table.assign(method=label, draw=draw, people=people))
    return pd.concat(frames, ignore_index=True)


def main_table(answers: pd.DataFrame, reached: dict[str, bool] | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per method: each rate's mean over all answers with its 95% bootstrap interval (`<rate>_ci_low`,
    `<rate>_ci_high`; draws resampled, then answers within a draw) and n; retain recognition also relative to the
    original model on the same photos. `reached`: whether each method reached the iso-privacy target on val (None
    for a row it does not name)."""
    rows = []
    original_retain = answers[(answers["method"] == "original") & (answers["people"] == "retain")]
    base = rates.recognition(original_retain) if len(original_retain) else np.nan
    for method, group in answers.groupby("method", sort=False):
        row = {"method": method}
        forget = group[group["people"] == "forget"]
        for name, per_answer in FORGET_RATES.items():
            try:
                values = per_answer(forget).to_numpy(dtype=float)
            except KeyError:  # a score this evaluation did not compute (no CLIP scorer)
                continue
            keep = ~np.isnan(values)  # TF-IDF is undefined for an answer with no known word
            row[name] = float(values[keep].mean()) if keep.any() else np.nan
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = bootstrap_interval(
                values[keep], groups=forget["draw"].to_numpy()[keep], seed=seed
            )
        for name, (people, per_answer) in OTHER_RATES.items():
            part = group[group["people"] == people]
            values = per_answer(part).to_numpy(dtype=float)
            row[name] = float(values.mean()) if len(values) else np.nan
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = bootstrap_interval(
                values, groups=part["draw"].to_numpy(), seed=seed
            )
        row["retain_recognition_relative"] = rates.retain_relative(row["retain_recognition"], base)
        row["n_forget_answers"], row["n_draws"] = len(forget), forget["draw"].nunique()
        # a row the sweep never chose (the original, an extra run such as "GA lr=0.003") has no answer: None
        row["reached_target"] = bool(reached[method]) if reached is not None and method in reached else None
        rows.append(row)
    return pd.DataFrame(rows)


def behaviour_shares(answers: pd.DataFrame, behaviours=BEHAVIOURS) -> pd.DataFrame:
    """The share of each behaviour class (`metrics.behaviour.BEHAVIOURS`, or the given classes) in each method's
    answers on the forget and the retain people, tidy: one row per people, method and behaviour, with `share` and
    the number of answers `n` it is out of (methods in order of appearance)."""
    counted = answers[answers["people"].isin(["forget", "retain"])]
    rows = []
    for (people, method), group in counted.groupby(["people", "method"], sort=False):
        shares = group["behaviour"].value_counts(normalize=True)
        rows += [
            {"people": people, "method": method, "behaviour": b, "share": float(shares.get(b, 0.0)), "n": len(group)}
            for b in behaviours
        ]
    return pd.DataFrame(rows)


def calibration_record(steps: pd.DataFrame) -> dict:
    """The steps each method was calibrated to and its val USR there, by draw (`calibrate_draws`' table), for the
    results file."""
    return {
        "steps_by_draw": {
            m: {str(d): int(v) for d, v in row.items()}
            for m, row in steps.pivot(index="method", columns="draw", values="steps").iterrows()
        },
        "val_usr_by_draw": {
            m: {str(d): round(float(v), 4) for d, v in row.items()}
            for m, row in steps.pivot(index="method", columns="draw", values="val_usr").iterrows()
        },
        "learning_rate_by_draw": {
            m: {str(d): float(v) for d, v in row.items()}
            for m, row in steps.pivot(index="method", columns="draw", values="learning_rate").iterrows()
        },
    }


def check_main_table(table: pd.DataFrame, n_draws: int) -> None:
    """What a main table must be before it is promoted (a `ValueError` names what is not): rates in [0, 1], judge
    scores in [1, 5], every mean inside its interval, every method scored on every draw."""
    scores = ("judge_inform", "judge_hall", "tfidf_similarity", "clip_score")
    shares = [c for c in (*FORGET_RATES, *OTHER_RATES) if c in table and c not in scores]
    problems = [c for c in shares if not table[c].dropna().between(0, 1).all()]
    problems += [c for c in ("judge_inform", "judge_hall") if not table[c].dropna().between(1, 5).all()]
    for col in ("usr", "judge_inform", "refusal_rate"):
        inside = (table[f"{col}_ci_low"] <= table[col] + 1e-9) & (table[col] <= table[f"{col}_ci_high"] + 1e-9)
        if not inside.all():
            problems.append(f"{col} outside its interval")
    if not (table["n_draws"] == n_draws).all():
        problems.append(f"a method not scored on all {n_draws} draws")
    if problems:
        raise ValueError(f"the main table fails its checks: {problems}")


def by_draw(answers: pd.DataFrame, rate: str = "usr") -> pd.DataFrame:
    """A forget-side rate (`FORGET_RATES`) per method (rows, in order of appearance) and forget-set draw (columns):
    whether a setting chosen on one draw's people carries over to the others."""
    forget = answers[answers["people"] == "forget"]
    values = forget.assign(value=FORGET_RATES[rate](forget).astype(float))
    return values.pivot_table(index="method", columns="draw", values="value", aggfunc="mean", sort=False)


def paper_claims(table: pd.DataFrame, pubg: str = "PUBG", ga_pushed: str | None = None) -> dict:
    """The paper's claims at iso-privacy, each with the numbers it rests on and whether it holds here. A claim
    about "the baselines" compares against every baseline present that reached the privacy target."""
    t = table.set_index("method")
    baselines = [m for m in ("GA", "GD", "NPO", "RANDOM", "REJECT") if m in t.index]
    forgetting = [m for m in baselines if t.loc[m, "reached_target"]]

    def num(method, col):
        return {
            "mean": float(t.loc[method, col]),
            "ci": [float(t.loc[method, f"{col}_ci_low"]), float(t.loc[method, f"{col}_ci_high"])],
        }

    ga = ga_pushed if ga_pushed in t.index else "GA"
    claims = {
        "every method forgets (USR >= 0.95 on unseen test photos)": (
            bool((t.loc[[*baselines, pubg], "usr"] >= 0.95).all()),
            {m: num(m, "usr") for m in [*baselines, pubg]},
        ),
        "GA degenerates (degenerate rate >= 0.5)": (
            t.loc[ga, "degenerate_rate"] >= 0.5,
            {ga: num(ga, "degenerate_rate")},
        ),
        "NPO or RANDOM hallucinate identities (rate >= 0.1)": (
            max(t.loc[m, "hallucinated_identity_rate"] for m in ("NPO", "RANDOM") if m in t.index) >= 0.1,
            {m: num(m, "hallucinated_identity_rate") for m in ("NPO", "RANDOM") if m in t.index},
        ),
        "REJECT refuses (refusal rate >= 0.5)": (
            "REJECT" in t.index and t.loc["REJECT", "refusal_rate"] >= 0.5,
            {"REJECT": num("REJECT", "refusal_rate")} if "REJECT" in t.index else {},
        ),
        "PUBG is the most informative method that forgets": (
            bool(all(t.loc[pubg, "judge_inform"] > t.loc[m, "judge_inform"] for m in forgetting)),
            {m: num(m, "judge_inform") for m in [*forgetting, pubg]},
        ),
        "PUBG is the best grounded method that forgets (CLIP score)": (
            bool(all(t.loc[pubg, "clip_score"] > t.loc[m, "clip_score"] for m in forgetting)),
            {m: num(m, "clip_score") for m in [*forgetting, pubg]},
        )
        if "clip_score" in t
        else None,  # not measured (no CLIP scorer): no claim, rather than a claim that fails
        "PUBG keeps retain people (relative recognition >= 0.9)": (
            t.loc[pubg, "retain_recognition_relative"] >= 0.9,
            {pubg: {"mean": float(t.loc[pubg, "retain_recognition_relative"])}},
        ),
        "PUBG's answers share less with the private facts than the original's (TF-IDF)": (
            t.loc[pubg, "tfidf_similarity"] < t.loc["original", "tfidf_similarity"],
            {m: num(m, "tfidf_similarity") for m in ("original", pubg)},
        ),
    }
    return {
        name: {"holds": bool(claim[0]), "numbers": claim[1], "compared_with": forgetting}
        for name, claim in claims.items()
        if claim is not None
    }
