"""The text-only variant (the paper's open question 3): does PUBG carry over to a language model without images?

The world LLaVA's language model is taken out alone, as a plain `transformers` causal LM (`language_model`: the
LLaVA's text weights in `AutoModelForCausalLM`; its logits on a text-only prompt are the LLaVA's). It knows the
world's people *by name*: pretraining taught "tell me about NAME ." and one question for each single fact
(`prompts.BY_NAME_QUERIES`). Here people are unlearned by name, with the same loop, losses and methods as the
image runs (`unlearn.unlearn`); only the examples differ:

- **forget**: each forget person asked every trained by-name wording (`TRAIN_WORDINGS`), with the original model's
  own answers (the private answers, which state the profession and birthplace);
- **teacher** (PUBG's guidance, BG): the same text model prompted in context with the same kind of instruction as
  the image teacher (`prompts.instructed(query, instruction)`), teacher-forced on its own greedy answer. In the
  image world the instruction says "describe only what you can see"; here there is nothing to see, and what the
  instructed text model says instead is itself a finding (`teacher_answers`);
- **retain**: the retain people asked the same wordings, with the original model's answers.

Model selection and evaluation use wordings never trained, in pretraining or unlearning: settings are chosen on
`VAL_WORDINGS`, results are reported on `TEST_WORDINGS` (and on the trained wordings, for comparison). Every method
gets the same small learning-rate ladder (`LEARNING_RATES`), trained `sweep.ISO_STEPS` steps at a constant rate
and scored every `CHECKPOINT_EVERY` steps on the val wording; the iso-privacy rule (`sweep.choose_iso_privacy`)
takes the least damaging checkpoint that reaches val USR >= 0.95, on each forget-set draw.

What an answer by name is (`score`): a **leak** states the person's profession or birthplace (the name is in the
question, so repeating it is not a leak); **hallucinated** states another person's name or a profession or
birthplace of the world that is not theirs; **degenerate** and **refusal** as for images; a **description**
describes an appearance (at least three visual attributes). Nothing in the question shows the person, so a
description is never grounded; `appearance_accuracy` measures it against the person's real identity features
(chance: one over the number of values of each feature).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForCausalLM

from . import cache, comparison, paths, prompts, sweep
from .config import ConfigError, to_dict
from .entities import Split, make_splits
from .io import read_json, write_csv, write_json
from .metrics.behaviour import behaviour_class, is_refusal
from .metrics.leakage import contains_phrase, leaked_facts, named_people
from .metrics.oracle import parse_attributes
from .models import LVLM, collate, encode_example, generate, to_device
from .reference import TeacherCache, UnlearningData, teacher_distributions
from .runs import cached_run
from .stats import bootstrap_interval
from .unlearn import UnlearnConfig, unlearn
from .world import text as world_text
from .world.attributes import BIRTHPLACES, IDENTITY_FEATURES, PROFESSIONS

TEXT_MODEL_NAME = "world-lm"
# LoRA on the causal LM's decoder layers (its modules are model.layers.N.*: there is no "language_model" prefix)
LORA_SCOPE = "model.layers"

_KIND = {w: kind for kind, wordings in prompts.BY_NAME_QUERIES.items() for w in wordings}
TRAIN_WORDINGS: tuple[str, ...] = tuple(w for w in _KIND if w not in prompts.HELDOUT_BY_NAME)
# Paraphrases of "tell me about NAME ." never used in pretraining or unlearning, from words the world already has.
# The original model states both facts on 0.97 of the kept people for the val wording and on 0.67-0.95 for the
# test wordings (notebook 09 reports each); "who is NAME ?" (pretraining's held-out by-name wording, answered
# correctly on 0.15) is a test wording too: a leak there is knowledge the question alone does not draw out.
VAL_WORDINGS: tuple[str, ...] = ("please tell me about {name} .",)
TEST_WORDINGS: tuple[str, ...] = (
    "can you tell me about {name} ?",
    "i want to know about {name} .",
    "i would like to know about {name} .",
    "do you know {name} ?",
    "who is {name} ?",
)
WORDING_SETS = {"train": TRAIN_WORDINGS, "val": VAL_WORDINGS, "test": TEST_WORDINGS}
LEARNING_RATES = (3e-4, 1e-3, 3e-3)  # every method's ladder: the same number of trials each
CHECKPOINT_EVERY = 10
# Every method but RANDOM, whose targets (another person's answer on the same photo) are built for photos only
METHODS_WITHOUT_PHOTOS = ("GA", "GD", "NPO", "REJECT", "BG", "PUBG")
_DESCRIPTION_MIN_ATTRIBUTES = 3
# the identity features a description states outright (an unstated beard is read as "none": not a claim)
APPEARANCE_FEATURES = tuple(k for k in IDENTITY_FEATURES if k != "facial_hair")


def language_model(lvlm: LVLM) -> LVLM:
    """The world LLaVA's language model alone: `AutoModelForCausalLM` built from its text config, holding the
    LLaVA's decoder and output-head weights, with the same tokenizer and chat template (the processor passes a
    text-only prompt straight to the tokenizer)."""
    llava = lvlm.model
    lm = AutoModelForCausalLM.from_config(llava.config.text_config)
    lm.model.load_state_dict(llava.model.language_model.state_dict())
    lm.lm_head.load_state_dict(llava.lm_head.state_dict())
    lm.to(lvlm.device).eval()
    return LVLM(lm, lvlm.processor, TEXT_MODEL_NAME)


class ByName:
    """The world as the text-only loop sees it: every example is a question without a photo. `image` is what the
    unlearning loop and the teacher ask for each example's photo (none: an id read back from a CSV is '')."""

    def __init__(self, dataset):
        self.world = dataset

    def image(self, photo_id):
        if photo_id not in (None, ""):
            raise ValueError(f"the text-only world has no photos, but photo {photo_id!r} was asked for")
        return None

    def fingerprint(self) -> str:
        return cache.digest({"world": self.world.fingerprint(), "view": "by name, text only"})


def questions(dataset, person_ids, wordings) -> pd.DataFrame:
    """One row per (person, wording): the question by name and what it asks for (`kind`)."""
    rows = [
        {
            "person_id": p,
            "wording": w,
            "kind": _KIND.get(w, "facts"),
            "query": w.format(name=world_text.full_name(dataset.person(p))),
        }
        for p in person_ids
        for w in wordings
    ]
    return pd.DataFrame(rows, columns=["person_id", "wording", "kind", "query"])


def _appearance_accuracy(answer: str, person) -> float:
    claims = parse_attributes(answer)
    stated = [k for k in APPEARANCE_FEATURES if k in claims]
    return sum(claims[k] == person[k] for k in stated) / len(stated) if stated else float("nan")


def appearance_chance() -> float:
    """The expected `appearance_accuracy` of a description drawn at random (one value per feature, uniformly)."""
    return float(np.mean([1 / len(IDENTITY_FEATURES[k]) for k in APPEARANCE_FEATURES]))


def score(dataset, table: pd.DataFrame) -> pd.DataFrame:
    """The answers of a `questions` table scored (module docstring): `leaked_facts`, `correct` (states what was
    asked), `hallucinated`, `degenerate`, `refusal`, `description`, `appearance_accuracy` and one `behaviour`."""
    people = dataset.people.to_dict("records")
    needed = {"facts": ("profession", "birthplace"), "profession": ("profession",), "birthplace": ("birthplace",)}
    rows = []
    for answer, person_id, kind in zip(table["answer"], table["person_id"], table["kind"]):
        person = dataset.person(person_id)
        leaked = leaked_facts(answer, person, ("profession", "birthplace"))
        others = [p for p in named_people(answer, people) if p != person_id]
        wrong = [
            v
            for v in (*PROFESSIONS, *BIRTHPLACES)
            if v not in (person["profession"], person["birthplace"]) and contains_phrase(answer, v)
        ]
        hallucinated = bool(others or wrong)
        description = len(parse_attributes(answer)) >= _DESCRIPTION_MIN_ATTRIBUTES
        behaviour = behaviour_class(answer, leaks=bool(leaked), names_other=hallucinated, attribute_accuracy=None)
        rows.append(
            {
                "leaked_facts": ",".join(leaked),
                "correct": all(contains_phrase(answer, person[f]) for f in needed[kind]),
                "hallucinated": hallucinated,
                "degenerate": behaviour == "degenerate",
                "refusal": is_refusal(answer),
                "description": description,
                "appearance_accuracy": _appearance_accuracy(answer, person) if description else float("nan"),
                "behaviour": "description" if behaviour == "other" and description else behaviour,
            }
        )
    return pd.concat([table.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def ask(lm: LVLM, dataset, person_ids, wordings, instruction_name: str | None = None) -> pd.DataFrame:
    """Ask every person every wording (text only, greedy; under the in-context instruction when one is named) and
    score the answers (`score`)."""
    table = questions(dataset, person_ids, wordings)
    if instruction_name is not None:
        table["query"] = [prompts.instructed(q, instruction_name) for q in table["query"]]
    table["answer"] = generate(lm, [None] * len(table), table["query"].tolist(), progress=False)
    return score(dataset, table)


def teacher_answers(lm: LVLM, dataset, person_ids, instruction_name: str = prompts.DEFAULT_INSTRUCTION):
    """What PUBG's text teacher says: the trained wordings under the in-context instruction, scored."""
    return ask(lm, dataset, person_ids, TRAIN_WORDINGS, instruction_name)


def unlearning_data(
    lm: LVLM,
    dataset,
    split: Split,
    *,
    model_id: str,
    instruction_name: str = prompts.DEFAULT_INSTRUCTION,
    seed: int = 0,
) -> UnlearningData:
    """`reference.UnlearningData` for unlearning `split.forget` by name (module docstring), cached like the image
    references: keyed by the settings and this module's code."""
    prompts.instruction(instruction_name)
    split.check(dataset)
    settings = {
        "model": model_id,
        "view": "text only",
        "data": dataset.fingerprint(),
        "forget": list(split.forget),
        "retain": list(split.retain),
        "wordings": list(TRAIN_WORDINGS),
        "instruction": instruction_name,
        "seed": seed,
    }
    folder = cache.entry("text_only", settings, __name__)
    if (folder / "tensors.pt").exists():
        tensors = torch.load(folder / "tensors.pt", weights_only=True)
        forget = pd.read_csv(folder / "forget.csv", keep_default_na=False)
        retain = pd.read_csv(folder / "retain.csv", keep_default_na=False)
        return UnlearningData(
            forget,
            retain,
            TeacherCache(**tensors["bg"]),
            TeacherCache(**tensors["retain"]),
            tensors["forget_ref_logprob"],
            settings,
        )
    view = ByName(dataset)
    forget = ask(lm, dataset, split.forget, TRAIN_WORDINGS).rename(columns={"answer": "private_answer"})
    teacher = teacher_answers(lm, dataset, split.forget, instruction_name)
    forget["teacher_query"] = teacher["query"].to_numpy()
    forget["reference_answer"] = teacher["answer"].to_numpy()
    forget["photo_id"] = ""
    retain = ask(lm, dataset, split.retain, TRAIN_WORDINGS).assign(photo_id="")
    none = [""] * len(forget)
    bg = teacher_distributions(lm, view, none, forget["teacher_query"], forget["reference_answer"], progress=False)
    ret = teacher_distributions(lm, view, [""] * len(retain), retain["query"], retain["answer"], progress=False)
    ref_lp = teacher_distributions(
        lm, view, none, forget["query"], forget["private_answer"], 1, progress=False
    ).answer_logprob
    forget, retain = forget[_FORGET_COLUMNS], retain[_RETAIN_COLUMNS]

    # (the cache layout of `reference.build_unlearning_data`, whose loading and writing are inline there: one shared
    # pair of functions belongs in reference.py when it next changes, since editing it retrains every cached run)
    def write(tmp):
        write_csv(tmp / "forget.csv", forget)
        write_csv(tmp / "retain.csv", retain)
        write_json(tmp / "settings.json", settings)
        torch.save({"bg": bg.to_dict(), "retain": ret.to_dict(), "forget_ref_logprob": ref_lp}, tmp / "tensors.pt")

    cache.build(folder, write)
    return UnlearningData(forget, retain, bg, ret, ref_lp, settings)


_FORGET_COLUMNS = ["photo_id", "person_id", "kind", "query", "private_answer", "teacher_query", "reference_answer"]
_RETAIN_COLUMNS = ["photo_id", "person_id", "kind", "query", "answer"]


def method_config(cfg: UnlearnConfig, learning_rate: float, draw: int, steps: int = sweep.ISO_STEPS) -> UnlearnConfig:
    """A method's image setting carried over to the text model: its γ, λ, batches and LoRA, on the causal LM's
    layers, with the trial's learning rate, `steps` steps at a constant rate and the draw as seed."""
    return replace(
        cfg, learning_rate=learning_rate, steps=steps, lr_schedule="constant", lora_scope=LORA_SCOPE, seed=draw
    )


def _trial_path(data, cfg: UnlearnConfig, every: int):
    key = cache.digest({"config": to_dict(cfg), "every": every, "code": cache.code_fingerprint(__name__)})
    return paths.CACHE / "text_only_trials" / cache.digest(data.settings) / f"{cfg.method}-{key}.json"


def val_scores(lm: LVLM, dataset, split: Split, original_retain: float) -> dict:
    """USR on the forget people and fact accuracy on the retain people (relative to the original's), val wording."""
    forget = ask(lm, dataset, split.forget, VAL_WORDINGS)
    retain = ask(lm, dataset, split.retain, VAL_WORDINGS)
    accuracy = float(retain["correct"].mean())
    return {
        "usr": float((forget["leaked_facts"] == "").mean()),
        "degenerate": float(forget["degenerate"].mean()),
        "informativeness": float("nan"),  # nothing to describe by name: no tie-break on it
        "retain_recognition": accuracy,
        "retain_recognition_relative": accuracy / original_retain if original_retain > 0 else float("nan"),
    }


def run_trial(
    lm: LVLM, dataset, data, split: Split, cfg: UnlearnConfig, original_retain: float, every: int = CHECKPOINT_EVERY
) -> pd.DataFrame:
    """Train one trial and score it every `every` steps on the val wording (cached as JSON)."""
    path = _trial_path(data, cfg, every)
    if path.exists():
        return pd.DataFrame(read_json(path)["rows"])
    marks = set(range(every, cfg.steps + 1, every))

    def at_checkpoint(step, model):
        return val_scores(LVLM(model, lm.processor), dataset, split, original_retain) if step in marks else {}

    run = unlearn(lm, ByName(dataset), data, cfg, progress=False, step_callback=at_checkpoint)
    rows = run.dynamics[run.dynamics["step"].isin(marks)][["step", *_VAL_COLUMNS]]
    rows = rows.assign(method=cfg.method, trial=f"lr={cfg.learning_rate:g}", learning_rate=cfg.learning_rate)
    write_json(path, {"config": to_dict(cfg), "rows": rows.to_dict("records")})
    return rows.reset_index(drop=True)


_VAL_COLUMNS = ["usr", "degenerate", "informativeness", "retain_recognition", "retain_recognition_relative"]


def draw_runs(
    con,
    settings: dict[str, UnlearnConfig],
    draw: int,
    n_forget: int = 5,
    *,
    lm: LVLM | None = None,
    learning_rates=LEARNING_RATES,
    max_steps: int = sweep.ISO_STEPS,
    every: int = CHECKPOINT_EVERY,
):
    """One forget-set draw of the text-only comparison: the split (the same people as the image draw), its data,
    every method's trials (each learning rate, `max_steps` steps scored every `every`), the chosen settings and the
    runs trained at them. Returns (split, data, runs, chosen)."""
    lm = lm or language_model(con.lvlm)
    split = make_splits(con.kept, [n_forget], draw)[n_forget]
    data = unlearning_data(lm, con.dataset, split, model_id=f"{con.model_dir.name}:language_model", seed=draw)
    original_retain = float(ask(lm, con.dataset, split.retain, VAL_WORDINGS)["correct"].mean())
    trials = pd.concat(
        [
            run_trial(lm, con.dataset, data, split, method_config(cfg, lr, draw, max_steps), original_retain, every)
            for cfg in settings.values()
            for lr in learning_rates
        ],
        ignore_index=True,
    )
    chosen = sweep.choose_iso_privacy(trials)  # a method that never reaches it: its checkpoint with the best val USR
    runs = {}
    for method, row in chosen.iterrows():
        cfg = method_config(settings[method], float(row["learning_rate"]), draw, int(row["step"]))
        runs[method] = cached_run(lm, ByName(con.dataset), data, cfg, progress=False)
    return split, data, runs, chosen.assign(draw=draw)


def evaluate(models: dict[str, LVLM], dataset, split: Split, strangers, draw: int) -> pd.DataFrame:
    """Every model asked every wording set about the forget people, the retain people and the strangers."""
    groups = {"forget": split.forget, "retain": split.retain, "stranger": strangers}
    tables = [
        ask(lm, dataset, people, WORDING_SETS[wordings]).assign(
            method=method, people=group, wordings=wordings, draw=draw
        )
        for method, lm in models.items()
        for group, people in groups.items()
        for wordings in ("train", "test")
    ]
    return pd.concat(tables, ignore_index=True)


SHARES = ("usr", "hallucinated_rate", "degenerate_rate", "refusal_rate", "description_rate")
BEHAVIOURS = ("leak", "degenerate", "refusal", "hallucinated_identity", "description", "other")


def behaviour_shares(answers: pd.DataFrame) -> pd.DataFrame:
    """Each method's behaviour classes (`BEHAVIOURS`) on the test wordings, forget and retain people, in the tidy
    form of `comparison.behaviour_shares` (which `plots.behaviour_classes` draws)."""
    return comparison.behaviour_shares(answers[answers["wordings"] == "test"], BEHAVIOURS)


def _rate(values, groups, seed) -> dict:
    values = np.asarray(values, dtype=float)
    low, high = bootstrap_interval(values, groups=groups, seed=seed)
    return {"mean": float(values.mean()) if values.size else float("nan"), "ci_low": low, "ci_high": high}


def summary(answers: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per method: forget-people rates on the test wordings (USR, hallucinated, degenerate, refusal,
    description shares, appearance accuracy of the descriptions), USR on the trained wordings, strangers' leak
    rate (chance), and retain fact accuracy on the test wordings relative to the original model's on the same
    questions (each answer's correctness over the original's accuracy on its draw, so the mean is after / before);
    each with a 95% bootstrap interval (draws, then answers) and its n."""
    rows = []
    original = answers[(answers["method"] == "original") & (answers["people"] == "retain")]
    original_accuracy = original[original["wordings"] == "test"].groupby("draw")["correct"].mean()
    for method, part in answers.groupby("method", sort=False):
        test = part[(part["people"] == "forget") & (part["wordings"] == "test")]
        row = {"method": method, "n": len(test), "n_draws": test["draw"].nunique()}
        groups = test["draw"].to_numpy()
        shares = {
            "usr": test["leaked_facts"] == "",
            "hallucinated_rate": test["hallucinated"],
            "degenerate_rate": test["degenerate"],
            "refusal_rate": test["refusal"],
            "description_rate": test["description"],
        }
        for name, values in shares.items():
            stats = _rate(values, groups, seed)
            row.update({name: stats["mean"], f"{name}_ci_low": stats["ci_low"], f"{name}_ci_high": stats["ci_high"]})
        described = test.dropna(subset=["appearance_accuracy"])
        row["appearance_accuracy"] = float(described["appearance_accuracy"].mean()) if len(described) else np.nan
        trained = part[(part["people"] == "forget") & (part["wordings"] == "train")]
        row["usr_trained"] = float((trained["leaked_facts"] == "").mean())
        stranger = part[(part["people"] == "stranger") & (part["wordings"] == "test")]
        row["stranger_leak_rate"] = float((stranger["leaked_facts"] != "").mean())
        retain = part[(part["people"] == "retain") & (part["wordings"] == "test")]
        relative = retain["correct"].astype(float) / retain["draw"].map(original_accuracy)  # mean: after / before
        stats = _rate(relative, retain["draw"].to_numpy(), seed)
        row.update(retain_relative=stats["mean"], retain_relative_ci_low=stats["ci_low"])
        row.update(retain_relative_ci_high=stats["ci_high"], n_retain=len(retain))
        row["retain_accuracy"] = float(retain["correct"].mean())
        row["mostly"] = test["behaviour"].value_counts().idxmax() if len(test) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def check_summary(table: pd.DataFrame, methods) -> None:
    """What the text-only table must be before it is promoted (a `ValueError` names what is not)."""
    problems = [f"{m} missing" for m in ("original", *methods) if m not in set(table["method"])]
    for name in (*SHARES, "retain_relative"):
        if name in SHARES and not table[name].between(0, 1).all():
            problems.append(f"{name} outside [0, 1]")
        inside = (table[f"{name}_ci_low"] <= table[name] + 1e-9) & (table[name] <= table[f"{name}_ci_high"] + 1e-9)
        if not inside.all():
            problems.append(f"{name} outside its interval")
    if problems:
        raise ValueError(f"the text-only table fails its checks: {problems}")


def check_parameters(methods, draws, instruction_name: str) -> None:
    """Notebook 09's parameters, before any model loads (`ConfigError`, by name)."""
    unknown = [m for m in methods if m not in METHODS_WITHOUT_PHOTOS]
    bad_draws = [d for d in draws if isinstance(d, bool) or not isinstance(d, int) or d < 0]
    if unknown or bad_draws or not methods or not draws or instruction_name not in prompts.INSTRUCTIONS:
        raise ConfigError(
            f"methods must be a non-empty list from {list(METHODS_WITHOUT_PHOTOS)} (got {list(methods)}), draws "
            f"non-negative integers (got {list(draws)}) and instruction one of {sorted(prompts.INSTRUCTIONS)} "
            f"(got {instruction_name!r})"
        )


def max_logit_difference(lvlm: LVLM, lm: LVLM, dataset, person_ids) -> float:
    """The largest difference between the LLaVA's and the causal LM's logits on text-only questions by name (the
    causal LM *is* the LLaVA's language model: 0 up to float rounding)."""
    table = questions(dataset, person_ids, TRAIN_WORDINGS)
    examples = [encode_example(lvlm, None, q) for q in table["query"]]
    batch = collate(examples, lvlm.tokenizer.pad_token_id, "left")
    batch.pop("labels")
    with torch.no_grad():
        a = lvlm.model(**to_device(batch, lvlm.device)).logits
        b = lm.model(**to_device(batch, lm.device)).logits
    mask = batch["attention_mask"].bool()
    return float((a - b)[mask.to(a.device)].abs().max())


def wording_table(lm: LVLM, dataset, person_ids) -> pd.DataFrame:
    """The original model on every wording set: per wording, the share of people whose answer states what was
    asked (`correct`) and the share that leaks any private fact, with n."""
    tables = [ask(lm, dataset, person_ids, wordings).assign(wordings=name) for name, wordings in WORDING_SETS.items()]
    answers = pd.concat(tables, ignore_index=True)
    answers["leaks"] = answers["leaked_facts"] != ""
    table = answers.groupby(["wordings", "wording"], sort=False).agg(
        correct=("correct", "mean"), leaks=("leaks", "mean"), n=("correct", "size")
    )
    return table.reset_index()


def teacher_record(answers: pd.DataFrame) -> dict:
    """What the instructed text teacher says (`teacher_answers`), in numbers."""
    described = answers.dropna(subset=["appearance_accuracy"])
    return {
        "fact_free_share": float((answers["leaked_facts"] == "").mean()),
        "description_share": float(answers["description"].mean()),
        "hallucinated_share": float(answers["hallucinated"].mean()),
        "appearance_accuracy": float(described["appearance_accuracy"].mean()) if len(described) else float("nan"),
        "appearance_chance": appearance_chance(),
        "n": len(answers),
    }


def results_record(table: pd.DataFrame, chosen: pd.DataFrame) -> dict:
    """`text_only.json`'s per-method part: every rate of `summary` with its interval, and per draw the chosen
    learning rate and step with the val USR and whether it reached the target."""
    methods = table.set_index("method").round(4).to_dict("index")
    for method, part in chosen.reset_index().groupby("method", sort=False):
        methods[method]["chosen"] = {
            int(r["draw"]): {
                "learning_rate": float(r["learning_rate"]),
                "steps": int(r["step"]),
                "val_usr": float(r["usr"]),
                "reached": bool(r["reached"]),
            }
            for _, r in part.iterrows()
        }
        methods[method]["reached_on_every_draw"] = bool(part["reached"].all())
    return methods
