"""Repeated unlearning runs, evaluated one way, summarised over seeds (notebooks 06 and 07).

A `Condition` is one unlearning run: its settings, the size of the forget set, the seed, and the reference: the
in-context instruction and whether its answers are greedy or sampled. The seed draws the forget set
(`entities.make_splits`, so seed 0 is notebook 04/05's
forget set), seeds the reference data and the run (LoRA initialisation, batch order); the original model and the
world stay fixed. `Experiment.run(conditions)` trains each run (or loads it: runs are cached by `unlearn.cached_run`)
and scores it with `evaluate.main_table_row` on the forget people's seen photos (trained on) and test photos (never
used for training or for choosing settings), retain recognition on the retain people's test photos relative to the
original model on the same photos, and USR under paraphrased queries. Scores are cached next to the run.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from . import cache, prompts
from .config import ConfigError, to_dict
from .construction import Construction
from .entities import Split, make_splits
from .evaluate import MAIN_TABLE_COLUMNS, answer_table, main_table_row, score_answers
from .io import read_json, write_json
from .labels import IGNORE
from .metrics import rates
from .metrics.leakage import name_tokens
from .models import encode_example
from .progress import tqdm
from .reference import build_unlearning_data
from .runs import cached_run
from .unlearn import UnlearnConfig

# The per-photo metrics of the main table that an experiment scores on seen and unseen forget photos (TF-IDF needs
# the original's answers on each photo; retain recognition is scored once, on retain photos).
SCORED = tuple(c for c in MAIN_TABLE_COLUMNS if c not in ("method", "tfidf_similarity", "retain_recognition_relative"))


@dataclass(frozen=True)
class Condition:
    """One unlearning run of an experiment; `group` and `label` say which question it answers and how figures
    name it (e.g. group "lambda", label "λ=2")."""

    group: str
    label: str
    config: UnlearnConfig
    n_forget: int = 5
    seed: int = 0
    instruction: str = prompts.DEFAULT_INSTRUCTION
    reference_temperature: float = 0.0  # 0: greedy reference answers; > 0: sampled at this temperature

    def __post_init__(self):
        prompts.instruction(self.instruction)  # unknown wordings fail by name
        if self.n_forget <= 0:
            raise ConfigError(f"Condition.n_forget must be positive, got {self.n_forget}")
        if self.reference_temperature < 0:
            raise ConfigError(f"Condition.reference_temperature must be >= 0, got {self.reference_temperature}")

    @property
    def run_config(self) -> UnlearnConfig:
        """The config trained: the condition's seed, and no per-step probing (experiments read only the final
        scores; the probe forward would cost about a quarter of the training time)."""
        return replace(self.config, seed=self.seed, probe_every=0)


def conditions(group: str, configs: dict[str, UnlearnConfig], seeds, n_forget=(5,), **fields) -> list[Condition]:
    """Every labelled config × seed × forget size, as conditions of one group."""
    return [
        Condition(group, label, cfg, n, seed, **fields)
        for n in n_forget
        for label, cfg in configs.items()
        for seed in seeds
    ]


# Score columns of an experiment's runs table that are shares of answers (in [0, 1]) and judge scores (in [1, 5]).
SHARE_PREFIXES = ("usr", "judge_privacy", "refusal", "degenerate", "hallucinated", "attribute", "retain_recognition")
JUDGE_PREFIXES = ("judge_inform", "judge_hall")


def check_score_ranges(runs: pd.DataFrame) -> None:
    """Every share of answers in [0, 1] and every judge score in [1, 5] (relative retain recognition, a ratio to
    the original, is exempt); a `ValueError` names the columns out of range. Notebooks check this before they
    promote their results."""
    shares = [c for c in runs if c.startswith(SHARE_PREFIXES) and c != "retain_recognition_relative"]
    judged = [c for c in runs if c.startswith(JUDGE_PREFIXES)]
    bad = [c for c in shares if not runs[c].dropna().between(0, 1).all()]
    bad += [c for c in judged if not runs[c].dropna().between(1, 5).all()]
    if bad:
        raise ValueError(f"scores out of their range (shares in [0, 1], judge scores in [1, 5]): {bad}")


class Experiment:
    """Runs and scores conditions on one construction (`data.construct`): the dataset, the original model, the
    recognised people."""

    def __init__(
        self,
        con: Construction,
        *,
        clip=None,
        paraphrases=(),
        model_id: str | None = None,
        progress: bool = True,
        keep_encoded: int = 3,
    ):
        """`keep_encoded`: for how many forget sets the encoded training examples stay in memory between runs
        (the world's photos are tiny; use 0 with a real model's large pixel arrays)."""
        self.con, self.dataset, self.lvlm, self.clip = con, con.dataset, con.lvlm, clip
        self.paraphrases = tuple(paraphrases)
        self.model_id = model_id or str(con.model_dir)
        self.progress = progress
        self.keep_encoded = keep_encoded
        self._data: dict = {}
        self._original: dict = {}
        self._encoded: OrderedDict = OrderedDict()

    def _example_cache(self, n_forget: int, seed: int) -> dict | None:
        if self.keep_encoded <= 0:
            return None
        key = (n_forget, seed)
        self._encoded.setdefault(key, {})
        self._encoded.move_to_end(key)
        while len(self._encoded) > self.keep_encoded:
            self._encoded.popitem(last=False)
        return self._encoded[key]

    def split(self, n_forget: int, seed: int) -> Split:
        kept = self.con.kept
        if n_forget >= len(kept):
            raise ConfigError(f"a forget set of {n_forget} needs more than the {len(kept)} recognised people")
        return make_splits(kept, [n_forget], seed)[n_forget]

    def data(
        self,
        n_forget: int,
        seed: int,
        instruction: str = prompts.DEFAULT_INSTRUCTION,
        reference_temperature: float = 0.0,
    ):
        key = (n_forget, seed, instruction, reference_temperature)
        if key not in self._data:
            sampled = (
                {"reference_sampling": True, "reference_temperature": reference_temperature}
                if reference_temperature > 0
                else {}
            )
            self._data[key] = build_unlearning_data(
                self.lvlm,
                self.dataset,
                self.split(n_forget, seed),
                model_id=self.model_id,
                instruction_name=instruction,
                seed=seed,
                progress=False,
                **sampled,
            )
        return self._data[key]

    def photos(self, split: Split) -> dict[str, list[str]]:
        """The photos each score uses: forget people's seen photos (trained on) and test photos (never used for
        training or choosing settings), and the retain people's test photos."""

        def of(people, photo_split):
            return self.dataset.photos_of(people, [photo_split])["photo_id"].tolist()

        return {
            "seen": of(split.forget, "seen"),
            "unseen": of(split.forget, "test"),
            "retain": of(split.retain, "test"),
        }

    def score(self, lvlm, split: Split, original_retain: float | None = None) -> dict:
        """Scores of one model on one forget set: `<metric>_seen`, `<metric>_unseen` (see `SCORED`),
        `retain_recognition` (and `_relative`, given the original's), `usr_paraphrase_<i>` on unseen photos."""
        ids = self.photos(split)
        retain = answer_table(lvlm, self.dataset, ids["retain"], progress=False)
        retain_rate = rates.recognition(retain)
        row = {"retain_recognition": retain_rate}
        if original_retain is not None:
            row["retain_recognition_relative"] = rates.retain_relative(retain_rate, original_retain)
        for which in ("seen", "unseen"):
            table = answer_table(lvlm, self.dataset, ids[which], progress=False)
            if self.clip is not None and which == "unseen":
                table["clip_score"] = self.clip.score(self.dataset.images(table["photo_id"]), table["answer"].tolist())
            scores = main_table_row("", table, retain, original_retain or 1.0)
            row.update({f"{k}_{which}": scores[k] for k in SCORED if k != "clip_score" or k in table})
            if "attribute_accuracy" in table:
                row[f"attribute_accuracy_{which}"] = float(table["attribute_accuracy"].mean())
        for i, query in enumerate(self.paraphrases):
            table = answer_table(lvlm, self.dataset, ids["unseen"], query, progress=False)
            row[f"usr_paraphrase_{i}"] = rates.usr(table)
        if self.paraphrases:
            row["usr_paraphrases"] = float(np.mean([row[f"usr_paraphrase_{i}"] for i in range(len(self.paraphrases))]))
        row.update(
            n_seen_photos=len(ids["seen"]), n_unseen_photos=len(ids["unseen"]), n_retain_photos=len(ids["retain"])
        )
        return row

    def original(self, n_forget: int, seed: int) -> dict:
        """The original model's scores on this forget set (the starting point every run is compared with)."""
        key = (n_forget, seed)
        if key not in self._original:
            self._original[key] = self.score(self.lvlm, self.split(n_forget, seed))
        return self._original[key]

    def reference_quality(self, n_forget: int, seed: int, instruction: str, reference_temperature: float = 0.0) -> dict:
        """How good the teacher is: its reference answers on the forget people's seen photos, scored like any
        answer (name-free share, visual attributes right)."""
        forget = self.data(n_forget, seed, instruction, reference_temperature).forget
        table = score_answers(
            self.dataset,
            forget["photo_id"],
            forget["reference_answer"],
            prompts.instructed(prompts.PAPER_QUERY, instruction),
        )
        out = {"reference_name_free": float((~(table["names_person"] | table["names_other"])).mean())}
        if "attribute_accuracy" in table:
            out["reference_attribute_accuracy"] = float(table["attribute_accuracy"].mean())
        return out

    def teacher_agreement(self, n_forget: int, seed: int, instruction: str, reference_temperature: float = 0.0) -> dict:
        """Does the teacher's distribution follow its (possibly sampled) reference text? Along the reference answers
        of the forget people's seen photos: the share of tokens that are the teacher's most likely token there
        (`reference_is_teacher_top1`; 1 for greedy references), the share of positions where the reference has a
        person's name word (`reference_name_positions`), the share of those where the teacher's most likely token
        is a name word too (`teacher_top1_is_name_there`) and the share of all positions where it is
        (`teacher_top1_is_name`). The guidance KL pulls the student to the teacher's distribution, not the text."""

        data = self.data(n_forget, seed, instruction, reference_temperature)
        forget, cache = data.forget, data.bg_teacher
        tokenizer = self.lvlm.tokenizer
        name_words = set().union(*(name_tokens(p) for p in self.dataset.people.to_dict("records")))
        is_name = lambda ids: np.array([w.lower() in name_words for w in tokenizer.convert_ids_to_tokens(ids)])  # noqa: E731
        same = names_sampled = names_both = names_top = total = 0
        for i, (photo, query, answer) in enumerate(
            zip(forget["photo_id"], forget["teacher_query"], forget["reference_answer"])
        ):
            labels = np.asarray(encode_example(self.lvlm, self.dataset.image(photo), query, answer)["labels"]).ravel()[
                1:
            ]
            text = labels[labels != IGNORE]
            top = cache.ids[i][np.arange(len(text)), cache.logprobs[i].argmax(-1).numpy()].numpy()
            sampled_name, top_name = is_name(text.tolist()), is_name(top.tolist())
            same += int((text == top).sum())
            names_sampled += int(sampled_name.sum())
            names_both += int((sampled_name & top_name).sum())
            names_top += int(top_name.sum())
            total += len(text)
        return {
            "reference_is_teacher_top1": same / total,
            "reference_name_positions": names_sampled / total,
            "teacher_top1_is_name_there": names_both / names_sampled if names_sampled else float("nan"),
            "teacher_top1_is_name": names_top / total,
        }

    def _score_key(self) -> str:
        """Scores are cached next to each run, keyed by what they depend on: the paraphrases, the CLIP scorer and
        the code that scores (`evaluate` and the metrics), so that a changed metric is recomputed."""
        clip = None if self.clip is None else [self.clip.record.get(k) for k in ("config", "val_retrieval_accuracy")]
        return cache.digest(
            {"paraphrases": self.paraphrases, "clip": clip, "code": cache.code_fingerprint("pubg_lib.evaluate")}, 12
        )

    def run_one(self, condition: Condition) -> dict:
        split = self.split(condition.n_forget, condition.seed)
        data = self.data(condition.n_forget, condition.seed, condition.instruction, condition.reference_temperature)
        run = cached_run(
            self.lvlm,
            self.dataset,
            data,
            condition.run_config,
            progress=False,
            example_cache=self._example_cache(condition.n_forget, condition.seed),
        )
        path = run.out_dir / f"scores-{self._score_key()}.json"
        if path.exists():
            scores = read_json(path)
        else:
            original = self.original(condition.n_forget, condition.seed)
            scores = self.score(run.lvlm, split, original["retain_recognition"])
            write_json(path, scores)
        cfg = condition.run_config
        return {
            "group": condition.group,
            "label": condition.label,
            "method": cfg.method,
            "n_forget": condition.n_forget,
            "seed": condition.seed,
            "instruction": condition.instruction,
            "reference_temperature": condition.reference_temperature,
            **{
                f"cfg_{k}": v
                for k, v in to_dict(cfg).items()
                if k in ("steps", "learning_rate", "lam", "gamma", "lora_rank", "lora_alpha")
            },
            "train_seconds": run.record["wall_seconds"],
            **scores,
        }

    def run(self, conditions_: list[Condition], desc: str = "runs") -> pd.DataFrame:
        """One row per condition, in order; each run trained once and cached."""
        rows = [self.run_one(c) for c in tqdm(conditions_, desc=desc, disable=not self.progress)]
        return pd.DataFrame(rows)
