"""Entity datasets: the embedded world or a folder of real photos, behind one interface.

On-disk layout (the Hugging Face `imagefolder` convention, so `datasets.load_dataset("imagefolder", data_dir=...)`
reads it too)::

    root/
      people.csv        one row per person: person_id, name, and private facts (profession, birthplace, ...)
      metadata.csv      one row per photo: file_name (relative to root), person_id, split (seen|val|test),
                        optionally ground-truth visual attributes
      p000/p000_00.png  the photos

This layout is how a user brings a real celebrity photo set: the loader below is the real-data path.
"""
from __future__ import annotations

import dataclasses
import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from .config import WorldConfig
from .io import atomic_write_bytes, write_csv
from .world import SPLITS
from .world import text as world_text
from .world.attributes import IDENTITY_FEATURES
from .world.entities import sample_people, sample_photos
from .world.render import render_photo

PEOPLE_REQUIRED = ("person_id", "name")
PRIVATE_FACT_COLUMNS = ("first_name", "last_name", "profession", "birthplace")
METADATA_REQUIRED = ("file_name", "person_id", "split")


class DataError(ValueError):
    """The dataset on disk or in memory is malformed; the message names the file, column or row."""


@dataclasses.dataclass
class EntityDataset:
    """People, their photos and a way to get each photo's image.

    `people` has at least `person_id`, `name`, `trained`; `photos` has `photo_id`, `person_id`, `split`.
    World datasets also carry every identity feature and photo attribute (the ground truth of the oracle judge).
    """

    people: pd.DataFrame
    photos: pd.DataFrame
    root: Path | None = None  # folder of images, or None for rendered world photos
    image_size: int = 96

    def __post_init__(self):
        self.people = self.people.reset_index(drop=True)
        self.photos = self.photos.reset_index(drop=True)
        _require(self.people, PEOPLE_REQUIRED, "people table")
        _require(self.photos, ("photo_id", "person_id", "split"), "photo table")
        if "trained" not in self.people:
            self.people["trained"] = True
        if "role" not in self.people:
            self.people["role"] = np.where(self.people["trained"], "known", "never_seen")
        if "first_name" not in self.people:
            parts = self.people["name"].str.split()
            self.people["first_name"] = parts.str[0]
            self.people["last_name"] = parts.str[-1]
        dup = self.people["person_id"][self.people["person_id"].duplicated()]
        if len(dup):
            raise DataError(f"duplicate person_id in people table: {sorted(dup.unique())[:5]}")
        unknown = sorted(set(self.photos["person_id"]) - set(self.people["person_id"]))
        if unknown:
            raise DataError(f"photos refer to unknown person(s) {unknown[:5]} not in the people table")
        bad = sorted(set(self.photos["split"]) - set(SPLITS))
        if bad:
            raise DataError(f"unknown split value(s) {bad}; expected one of {SPLITS}")
        self._images: dict[str, Image.Image] = {}

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_world(cls, cfg: WorldConfig | None = None) -> EntityDataset:
        cfg = cfg or WorldConfig()
        rng = np.random.default_rng(cfg.seed)
        people = sample_people(cfg, rng)
        photos = sample_photos(cfg, people, rng)
        return cls(people=people, photos=photos, root=None, image_size=cfg.image_size)

    @classmethod
    def from_folder(cls, root: Path | str) -> EntityDataset:
        """Load the on-disk layout (see module docstring). Every image is checked to open."""
        root = Path(root)
        people = _read_table(root / "people.csv", PEOPLE_REQUIRED)
        meta = _read_table(root / "metadata.csv", METADATA_REQUIRED)
        meta = meta.copy()
        if "photo_id" not in meta:
            meta["photo_id"] = meta["file_name"].map(lambda f: Path(f).stem)
        for col in ("trained",):
            if col in people and people[col].dtype == object:
                people[col] = people[col].astype(str).str.lower().isin(["true", "1", "yes"])
        ds = cls(people=people, photos=meta, root=root)
        for file_name in meta["file_name"]:
            ds._check_image(root / file_name)
        return ds

    def export(self, root: Path | str) -> Path:
        """Write the layout; images as PNG. Refuses to write into a non-empty folder of another dataset."""
        root = Path(root)
        if (root / "people.csv").exists():
            raise FileExistsError(f"{root} already holds a dataset; choose an empty folder")
        photos = self.photos.copy()
        photos.insert(0, "file_name", [f"{p}/{q}.png" for p, q in zip(photos["person_id"], photos["photo_id"])])
        for file_name, photo_id in zip(photos["file_name"], photos["photo_id"]):
            import io as _io

            buf = _io.BytesIO()
            self.image(photo_id).save(buf, format="PNG")
            atomic_write_bytes(root / file_name, buf.getvalue())
        write_csv(root / "metadata.csv", photos)
        write_csv(root / "people.csv", self.people)  # written last: its presence marks a finished export
        return root

    # ---- access -------------------------------------------------------------------------------
    def _check_image(self, path: Path) -> Image.Image:
        if not path.exists():
            raise DataError(f"image file missing: {path}")
        try:
            with Image.open(path) as im:
                im.load()
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise DataError(f"corrupt or unreadable image {path}: {err}") from err

    def image(self, photo_id: str) -> Image.Image:
        if photo_id in self._images:
            return self._images[photo_id]
        row = self.photo(photo_id)
        if self.root is None:
            img = render_photo(self.person(row["person_id"]), row, self.image_size)
        else:
            img = self._check_image(self.root / row["file_name"])
        self._images[photo_id] = img
        return img

    def images(self, photo_ids) -> list[Image.Image]:
        return [self.image(p) for p in photo_ids]

    @cached_property
    def _person_index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.people["person_id"])}

    @cached_property
    def _photo_index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.photos["photo_id"])}

    def person(self, person_id: str) -> dict:
        if person_id not in self._person_index:
            raise KeyError(f"unknown person {person_id!r}; known ids look like {list(self._person_index)[:3]}")
        return self.people.iloc[self._person_index[person_id]].to_dict()

    def photo(self, photo_id: str) -> dict:
        if photo_id not in self._photo_index:
            raise KeyError(f"unknown photo {photo_id!r}")
        return self.photos.iloc[self._photo_index[photo_id]].to_dict()

    def photos_of(self, person_ids, splits=SPLITS) -> pd.DataFrame:
        person_ids = list(person_ids)
        for p in person_ids:
            self.person(p)  # raises on an unknown person
        sel = self.photos["person_id"].isin(person_ids) & self.photos["split"].isin(list(splits))
        return self.photos[sel]

    @property
    def has_attributes(self) -> bool:
        return all(c in self.photos for c in ("clothing_color", "background")) and all(
            c in self.people for c in IDENTITY_FEATURES)

    def attributes(self, photo_id: str) -> dict:
        """Ground-truth identity features + photo attributes of one photo (world datasets only)."""
        if not self.has_attributes:
            raise DataError("this dataset has no ground-truth attributes (only the embedded world has them)")
        row = self.photo(photo_id)
        return {**self.person(row["person_id"]), **row}

    def description(self, photo_id: str) -> str:
        return world_text.describe(self.attributes(photo_id))

    def identity_answer(self, photo_id: str) -> str:
        row = self.photo(photo_id)
        person = self.person(row["person_id"])
        if self.has_attributes:
            return world_text.identity_answer(person, self.attributes(photo_id))
        return world_text.private_facts(person) if all(c in person for c in PRIVATE_FACT_COLUMNS) else f"this is {person['name']} ."

    def fingerprint(self) -> str:
        """A hash of the tables (and so of every rendered photo): names caches and run records."""
        h = hashlib.sha256()
        h.update(self.people.to_csv(index=False).encode())
        h.update(self.photos.to_csv(index=False).encode())
        return h.hexdigest()[:16]


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {missing}; it has {list(frame.columns)}")


def _read_table(path: Path, required) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"missing table {path}")
    try:
        frame = pd.read_csv(path, dtype={"person_id": str, "photo_id": str})
    except Exception as err:  # pandas raises several types for malformed CSV
        raise DataError(f"cannot read {path}: {err}") from err
    _require(frame, required, str(path))
    return frame


# ---------------------------------------------------------------------------------------------------------------
# Dataset construction as in the paper: keep only people the original model recognises, then forget/retain sets
# ---------------------------------------------------------------------------------------------------------------
def ask_identity(lvlm, dataset: EntityDataset, photo_ids, query: str | None = None, progress: bool = True,
                 max_new_tokens: int = 40) -> pd.DataFrame:
    """The model's answer to the identity query for each photo, and whom it names (scored by
    `evaluate.answer_table`, the one place answers are scored)."""
    from . import prompts
    from .evaluate import answer_table
    from .metrics.leakage import named_people

    table = answer_table(lvlm, dataset, list(photo_ids), query or prompts.PAPER_QUERY, progress=progress,
                         max_new_tokens=max_new_tokens)
    people = dataset.people.to_dict("records")
    persons = [dataset.person(p) for p in table["person_id"]]
    return pd.DataFrame({
        "photo_id": table["photo_id"], "person_id": table["person_id"], "split": table["split"],
        "trained": [bool(p["trained"]) for p in persons], "role": [p.get("role", "known") for p in persons],
        "answer": table["answer"], "named_correctly": table["names_person"],
        "named_ids": [",".join(named_people(a, people)) for a in table["answer"]],
    })


def recognition_filter(identity_answers: pd.DataFrame, min_share: float = 0.6) -> pd.DataFrame:
    """Per person: share of photos named correctly, whether the person is kept, and why.

    The paper keeps only entities the original model actually recognises; we keep a person when the model names
    them correctly on at least `min_share` of the photos asked about (the unseen ones, in notebook 01).
    """
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must lie in [0, 1], got {min_share}")
    rows = []
    for person_id, grp in identity_answers.groupby("person_id", sort=True):
        share = float(grp["named_correctly"].mean())
        kept = share >= min_share
        others = [i for ids in grp["named_ids"] for i in ids.split(",") if i and i != person_id]
        if kept:
            reason = f"named correctly on {int(grp['named_correctly'].sum())}/{len(grp)} photos"
        elif others:
            top = pd.Series(others).value_counts()
            reason = f"named correctly on {int(grp['named_correctly'].sum())}/{len(grp)}; mistaken for {top.index[0]} ({top.iloc[0]}x)"
        else:
            reason = f"named correctly on {int(grp['named_correctly'].sum())}/{len(grp)}; no name given"
        rows.append({"person_id": person_id, "trained": bool(grp["trained"].iloc[0]),
                     "role": grp["role"].iloc[0] if "role" in grp else "known", "recognition_share": share,
                     "kept": kept, "reason": reason})
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class Split:
    """Who is forgotten and who is retained (both drawn from the recognised people)."""

    forget: tuple[str, ...]
    retain: tuple[str, ...]

    def __post_init__(self):
        overlap = set(self.forget) & set(self.retain)
        if overlap:
            raise DataError(f"people in both forget and retain sets: {sorted(overlap)}")


def make_splits(kept_ids, sizes=(5, 10, 20), seed: int = 0) -> dict[int, Split]:
    """Nested forget sets (5 ⊂ 10 ⊂ 20) drawn from the kept people; everyone else kept is retained."""
    kept = sorted(kept_ids)
    if max(sizes) >= len(kept):
        raise DataError(f"forget set of {max(sizes)} needs more than {len(kept)} recognised people")
    order = [kept[i] for i in np.random.default_rng(seed).permutation(len(kept))]
    return {n: Split(tuple(sorted(order[:n])), tuple(sorted(order[n:]))) for n in sorted(sizes)}


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


def construct(world_cfg=None, model_cfg=None, *, min_share: float = 0.6, forget_sizes=(5, 10, 20),
              split_seed: int = 0, progress: bool = True) -> Construction:
    """The paper's dataset construction on the embedded world: pretrain (or load) the original model, ask it about
    every photo, keep the people it recognises on unseen photos, draw nested forget sets. Cached next to the model."""
    from .config import TinyModelConfig
    from .models import get_original_model, original_model_dir

    world_cfg = world_cfg or WorldConfig()
    model_cfg = model_cfg or TinyModelConfig()
    dataset = EntityDataset.from_world(world_cfg)
    lvlm, record = get_original_model(world_cfg, model_cfg, dataset=dataset, progress=progress)
    model_dir = original_model_dir(world_cfg, model_cfg)
    cache = model_dir / "identity_answers.csv"
    if cache.exists():
        answers = pd.read_csv(cache, dtype={"named_ids": str}, keep_default_na=False)
        answers["named_correctly"] = answers["named_correctly"].astype(str) == "True"
        answers["trained"] = answers["trained"].astype(str) == "True"
    else:
        answers = ask_identity(lvlm, dataset, dataset.photos["photo_id"], progress=progress)
        write_csv(cache, answers)
    recognition = recognition_filter(answers[answers["split"] != "seen"], min_share)
    kept = recognition.loc[recognition["kept"], "person_id"]
    splits = make_splits(kept, forget_sizes, split_seed)
    return Construction(dataset, lvlm, record, answers, recognition, splits, min_share, model_dir)


def recognition_by_split(identity_answers: pd.DataFrame) -> pd.DataFrame:
    """Per person: share of seen and of unseen (val + test) photos on which the model names them correctly."""
    frame = identity_answers.assign(photos=np.where(identity_answers["split"] == "seen", "seen", "unseen"))
    index = ["person_id", "trained"] + (["role"] if "role" in frame else [])
    table = frame.pivot_table(index=index, columns="photos", values="named_correctly",
                              aggfunc="mean").reset_index()
    table.columns.name = None
    return table
