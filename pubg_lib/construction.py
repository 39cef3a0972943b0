"""Dataset construction as in the paper: pretrain (or load) the original model, ask it about every photo, keep the
people it recognises on photos it never saw, and draw forget/retain sets from them.

The original model's answers are cached next to it, keyed by the fingerprint of this code (which includes the
scoring in `evaluate` and `metrics`): change how answers are scored and they are asked again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from . import cache, paths, probes, prompts
from .config import TinyModelConfig, WorldConfig, default_configs
from .entities import EntityDataset, Split, make_splits, recognition_filter, recognition_summary
from .evaluate import answer_table, instruction_following
from .io import read_json, write_csv
from .metrics.behaviour import is_refusal
from .metrics.leakage import named_people
from .pretraining import get_original_model, original_model_dir

DEFAULT_MIN_SHARE = 0.6  # keep a person named correctly on at least this share of their unseen photos


def ask_identity(
    lvlm, dataset: EntityDataset, photo_ids, query: str = prompts.PAPER_QUERY, progress: bool = True
) -> pd.DataFrame:
    """The model's answer to the identity query for each photo, and whom it names (scored by
    `evaluate.answer_table`, the one place answers are scored)."""
    table = answer_table(lvlm, dataset, list(photo_ids), query, progress=progress)
    people = dataset.people.to_dict("records")
    persons = [dataset.person(p) for p in table["person_id"]]
    return pd.DataFrame(
        {
            "photo_id": table["photo_id"],
            "person_id": table["person_id"],
            "photo_split": table["photo_split"],
            "trained": [bool(p["trained"]) for p in persons],
            "role": [p["role"] for p in persons],
            "answer": table["answer"],
            "named_correctly": table["names_person"],
            "named_ids": [",".join(named_people(a, people)) for a in table["answer"]],
        }
    )


@dataclasses.dataclass
class Construction:
    """Everything notebook 01 builds and later notebooks start from."""

    dataset: EntityDataset
    lvlm: object
    pretrain_record: dict
    identity_answers: pd.DataFrame  # the original model's answers on every photo of every person
    recognition: pd.DataFrame  # per person: the filter's decision and reason (on unseen photos)
    splits: dict[int, Split]
    min_share: float
    model_dir: Path  # where the original model and its pretraining log are cached

    @property
    def pretrain_log(self) -> pd.DataFrame:
        return pd.read_csv(self.model_dir / "pretrain_log.csv")

    @property
    def kept(self) -> list[str]:
        return self.recognition.loc[self.recognition["kept"], "person_id"].tolist()

    def split(self, n_forget: int) -> Split:
        if n_forget not in self.splits:
            raise KeyError(f"no forget set of size {n_forget}; built sizes are {sorted(self.splits)}")
        return self.splits[n_forget]


def construct(
    world_cfg: WorldConfig | None = None,
    model_cfg: TinyModelConfig | None = None,
    *,
    min_share: float = DEFAULT_MIN_SHARE,
    forget_sizes=(5, 10, 20),
    split_seed: int = 0,
    progress: bool = True,
) -> Construction:
    """The paper's dataset construction on the embedded world: pretrain (or load) the original model, ask it about
    every photo, keep the people it recognises on unseen photos, draw nested forget sets."""
    world_cfg = world_cfg or WorldConfig()
    model_cfg = model_cfg or TinyModelConfig()
    dataset = EntityDataset.from_world(world_cfg)
    lvlm, record = get_original_model(world_cfg, model_cfg, dataset=dataset, progress=progress)
    model_dir = original_model_dir(world_cfg, model_cfg)
    answers_path = model_dir / f"identity_answers-{cache.code_fingerprint(__name__)}.csv"
    with cache.exclusive(answers_path):
        if answers_path.exists():
            answers = pd.read_csv(answers_path, dtype={"named_ids": str}, keep_default_na=False)
            for column in ("named_correctly", "trained"):
                answers[column] = answers[column].astype(str) == "True"
        else:
            answers = ask_identity(lvlm, dataset, dataset.photos["photo_id"], progress=progress)
            write_csv(answers_path, answers)
    recognition = recognition_filter(answers[answers["photo_split"] != "seen"], min_share)
    kept = recognition.loc[recognition["kept"], "person_id"]
    splits = make_splits(kept, forget_sizes, split_seed)
    return Construction(dataset, lvlm, record, answers, recognition, splits, min_share, model_dir)


SMOKE_FORGET_SIZES = (2,)


def notebook_01_parameters(seed: int, smoke: bool) -> dict:
    """The recognition filter notebook 01 used on this seed (its `min_share` and forget-set sizes, from its stored
    result in the smoke or full results folder), or the defaults when 01 has stored none for this seed."""
    sizes = list(SMOKE_FORGET_SIZES) if smoke else [5, 10, 20]  # the smoke world keeps about 5 people
    default = {"min_share": DEFAULT_MIN_SHARE, "forget_sizes": sizes}
    path = paths.output_dirs(smoke)[0] / "01_dataset_construction.json"
    used = read_json(path).get("recognition_filter") if path.exists() else None
    if not used:
        return {**default, "from": "the defaults (notebook 01 has stored no filter)"}
    if used.get("seed") != seed:
        return {**default, "from": f"the defaults (notebook 01's stored filter is for seed {used.get('seed')})"}
    shown = path.relative_to(paths.ROOT) if path.is_relative_to(paths.ROOT) else path
    return {"min_share": used["min_share"], "forget_sizes": list(used["forget_sizes"]), "from": str(shown)}


def notebook_world(seed: int = 0, smoke: bool = False, progress: bool = True) -> Construction:
    """The world a notebook after 01 starts from, in one call: the default (or smoke) world and original model of
    `seed`, with the people notebook 01's recognition filter kept (its `min_share`, and its forget-set sizes,
    `notebook_01_parameters`) and forget sets drawn with `seed`."""
    world_cfg, model_cfg = default_configs(smoke=smoke, seed=seed)
    used = notebook_01_parameters(seed, smoke)
    con = construct(
        world_cfg,
        model_cfg,
        min_share=used["min_share"],
        forget_sizes=used["forget_sizes"],
        split_seed=seed,
        progress=progress,
    )
    print(
        f"world of seed {seed}{' (smoke)' if smoke else ''}: {len(con.kept)} people kept by notebook 01's filter "
        f"(min_share {used['min_share']}, from {used['from']}); forget-set sizes {sorted(con.splits)}"
    )
    return con


def original_abilities(con: Construction, progress: bool = False) -> dict:
    """What the original model can do, measured on photos it never saw (val + test) of the people it was trained to
    know. One definition for notebook 01 and the robustness check:

    - recognition (`entities.recognition_summary`): named correctly on unseen and seen photos, people kept;
    - `heldout_paraphrase_recognition`: named correctly when asked with identity wordings held out of pretraining;
    - `text_only_fact_accuracy`: asked by name without a photo (trained wordings), states the asked facts;
      `text_only_heldout_accuracy` for the held-out wording;
    - `confirmation_accuracy`: "is this NAME ?" answered yes for the right name and no for another;
    - `instructed_name_free_share`, `instructed_attribute_accuracy`: under the in-context instruction it names
      nobody and describes the photo;
    - `refusal_rate_paper_query` (should be ~0: it answers the paper's query), `declined_refusal_rate` (a trained
      wording of a question it declines, asked on photos it never saw: should be ~1, so refusing is in its
      repertoire) and `declined_heldout_refusal_rate` (a held-out wording: how far the refusal generalises).
    """
    answers, dataset, lvlm = con.identity_answers, con.dataset, con.lvlm
    out = recognition_summary(answers, con.recognition)
    unseen = answers[(answers["photo_split"] != "seen") & (answers["role"] == "known")]
    unseen_ids = unseen["photo_id"].tolist()
    known = dataset.people.loc[dataset.people["role"] == "known", "person_id"].tolist()
    heldout = probes.heldout_wording_answers(lvlm, dataset, unseen_ids, progress=progress)
    by_name = probes.by_name_answers(lvlm, dataset, known, progress=progress)
    confirm = probes.confirmation_answers(lvlm, dataset, unseen_ids, progress=progress)
    instructed = instruction_following(lvlm, dataset, unseen_ids, progress=progress)
    declined = answer_table(lvlm, dataset, unseen_ids, prompts.DECLINED_QUERIES[0], progress=progress)
    declined_heldout = answer_table(lvlm, dataset, unseen_ids, prompts.DECLINED_QUERIES[-1], progress=progress)
    out.update(
        heldout_paraphrase_recognition=float(heldout["names_person"].mean()),
        text_only_fact_accuracy=float(by_name.loc[~by_name["heldout"], "correct"].mean()),
        text_only_heldout_accuracy=float(by_name.loc[by_name["heldout"], "correct"].mean()),
        confirmation_accuracy=float(confirm["correct"].mean()),
        instructed_name_free_share=float(instructed["name_free"].mean()),
        instructed_attribute_accuracy=float(instructed["attribute_accuracy"].mean()),
        refusal_rate_paper_query=float(unseen["answer"].map(is_refusal).mean()),
        declined_refusal_rate=float(declined["answer"].map(is_refusal).mean()),
        declined_heldout_refusal_rate=float(declined_heldout["answer"].map(is_refusal).mean()),
    )
    return out
