"""Entity datasets: the embedded world or a folder of real photos, behind one interface.

On-disk layout (the Hugging Face `imagefolder` convention, so `datasets.load_dataset("imagefolder", data_dir=...)`
reads it too)::

    root/
      people.csv        one row per person: person_id, name, and private facts (profession, birthplace, ...)
      metadata.csv      one row per photo: file_name (relative to root), person_id, photo_split (seen|val|test),
                        optionally ground-truth visual attributes
      p000/p000_00.png  the photos

This layout is how a user brings a real celebrity photo set: the loader below is the real-data path. (Folders
written before `photo_split` was named so may call the column `split`; it is read as `photo_split`.)

Two kinds of split, two names: a photo's `photo_split` (seen, val, test) and the people's `Split` (forget, retain).
"""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
from functools import cached_property
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from .cache import digest
from .config import WorldConfig
from .io import atomic_write_bytes, staging_dir, write_csv
from .world import PHOTO_SPLITS
from .world import text as world_text
from .world.attributes import IDENTITY_FEATURES
from .world.render import render_photo
from .world.sampling import sample_people, sample_photos

PEOPLE_REQUIRED = ("person_id", "name")
PRIVATE_FACT_COLUMNS = ("first_name", "last_name", "profession", "birthplace")
METADATA_REQUIRED = ("file_name", "person_id", "photo_split")
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # ids become file names on export
MAX_IMAGE_PIXELS = 4096 * 4096  # larger images are refused before they are decoded


class DataError(ValueError):
    """The dataset on disk or in memory is malformed; the message names the file, column or row."""


@dataclasses.dataclass
class EntityDataset:
    """People, their photos and a way to get each photo's image.

    `people` has at least `person_id`, `name`, `trained`; `photos` has `photo_id`, `person_id`, `photo_split`.
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
        _require(self.photos, ("photo_id", "person_id", "photo_split"), "photo table")
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
        bad = sorted(set(self.photos["photo_split"]) - set(PHOTO_SPLITS))
        if bad:
            raise DataError(f"unknown photo_split value(s) {bad}; expected one of {PHOTO_SPLITS}")
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
        """Load the on-disk layout (see module docstring), trusting nothing in it.

        Every cell is read as text and converted explicitly (the same under pandas 2 and 3); an empty required cell
        is reported with its file and line; `file_name`s must be relative paths that stay inside `root` (no `..`,
        no absolute paths, no symlinks that lead out); `photo_id`s (given, or the file stems) and `file_name`s must be
        unique; every image must open and be at most `MAX_IMAGE_PIXELS` pixels."""
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"no dataset folder at {root}")
        people = _read_table(root / "people.csv", PEOPLE_REQUIRED)
        meta = _read_table(root / "metadata.csv", METADATA_REQUIRED, renamed={"split": "photo_split"})
        if "trained" in people:
            people["trained"] = _parse_flags(people["trained"], root / "people.csv", "trained")
        for file_name, line in zip(meta["file_name"], _lines(meta)):
            _inside(root, file_name, f"{root / 'metadata.csv'} line {line}")
        _unique(meta["file_name"], root / "metadata.csv", "file_name")
        if "photo_id" not in meta:
            meta["photo_id"] = meta["file_name"].map(lambda f: PurePosixPath(f).stem)
            _unique(
                meta["photo_id"],
                root / "metadata.csv",
                "photo_id (the file stem; add a photo_id column to tell photos with the same file stem apart)",
            )
        else:
            _unique(meta["photo_id"], root / "metadata.csv", "photo_id")
        _unique(people["person_id"], root / "people.csv", "person_id")
        ds = cls(people=people, photos=meta, root=root)
        for file_name in meta["file_name"]:
            ds._check_image(_inside(root, file_name, str(root / "metadata.csv")))
        return ds

    def export(self, root: Path | str) -> Path:
        """Write the layout; images as PNG. The folder must be new or empty; ids must be safe file names
        (`SAFE_ID`); the dataset appears at `root` only when complete (built aside, then renamed into place)."""
        root = Path(root)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise FileExistsError(f"{root} is not an empty folder; choose a new one")
        for column, frame in (("person_id", self.people), ("photo_id", self.photos)):
            bad = [v for v in frame[column] if not SAFE_ID.fullmatch(str(v))]
            if bad:
                raise DataError(
                    f"cannot export {column} {bad[:3]}: ids become file names and may hold only letters, "
                    f"digits, '_', '-' and '.', starting with a letter or digit"
                )
        photos = self.photos.copy()
        photos.insert(0, "file_name", [f"{p}/{q}.png" for p, q in zip(photos["person_id"], photos["photo_id"])])
        tmp = staging_dir(root)
        try:
            for file_name, photo_id in zip(photos["file_name"], photos["photo_id"]):
                buf = io.BytesIO()
                self.image(photo_id).save(buf, format="PNG")
                atomic_write_bytes(tmp / file_name, buf.getvalue())
            write_csv(tmp / "metadata.csv", photos)
            write_csv(tmp / "people.csv", self.people)
            if root.exists():
                root.rmdir()  # empty, checked above
            tmp.rename(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return root

    # ---- access -------------------------------------------------------------------------------
    def _check_image(self, path: Path) -> Image.Image:
        if not path.is_file():
            raise DataError(f"image file missing: {path}")
        try:
            with Image.open(path) as im:
                width, height = im.size  # read from the header, before any pixel is decoded
                if width * height > MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"image {path} is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                        "allowed (EntityDataset.MAX_IMAGE_PIXELS); resize it first"
                    )
                im.load()
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as err:
            raise DataError(f"corrupt or unreadable image {path}: {err}") from err

    def image(self, photo_id: str) -> Image.Image:
        if photo_id in self._images:
            return self._images[photo_id]
        row = self.photo(photo_id)
        if self.root is None:
            img = render_photo(self.person(row["person_id"]), row, self.image_size)
        else:
            img = self._check_image(_inside(self.root, row["file_name"], str(self.root / "metadata.csv")))
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

    def photos_of(self, person_ids, photo_splits=PHOTO_SPLITS) -> pd.DataFrame:
        person_ids = list(person_ids)
        for p in person_ids:
            self.person(p)  # raises on an unknown person
        sel = self.photos["person_id"].isin(person_ids) & self.photos["photo_split"].isin(list(photo_splits))
        return self.photos[sel]

    @property
    def has_attributes(self) -> bool:
        return all(c in self.photos for c in ("clothing_color", "background")) and all(
            c in self.people for c in IDENTITY_FEATURES
        )

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
        return (
            world_text.private_facts(person)
            if all(c in person for c in PRIVATE_FACT_COLUMNS)
            else f"this is {person['name']} ."
        )

    def fingerprint(self) -> str:
        """A hash of the tables (and so of every rendered photo): names caches and run records."""
        return digest({"people": self.people.to_csv(index=False), "photos": self.photos.to_csv(index=False)})


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {missing}; it has {list(frame.columns)}")


def _read_table(path: Path, required, renamed: dict[str, str] | None = None) -> pd.DataFrame:
    """A CSV read as text only (no type guessing: the same frame under pandas 2 and 3), every required cell
    filled (an empty one is reported with its line). `renamed` maps legacy column names to current ones."""
    if not path.is_file():
        raise DataError(f"missing table {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:  # pandas raises several types for malformed CSV
        raise DataError(f"cannot read {path}: {err}") from err
    frame = frame.astype(object)  # plain Python strings, whatever pandas' default string dtype
    frame = frame.rename(columns={old: new for old, new in (renamed or {}).items() if new not in frame})
    _require(frame, required, str(path))
    if frame.empty:
        raise DataError(f"{path} has no rows")
    for column in required:
        empty = [line for value, line in zip(frame[column], _lines(frame)) if not str(value).strip()]
        if empty:
            raise DataError(f"{path}: empty {column!r} on line(s) {empty[:5]}")
    return frame


def _lines(frame: pd.DataFrame) -> list[int]:
    """The file line of each row (the header is line 1)."""
    return [i + 2 for i in range(len(frame))]


def _parse_flags(values: pd.Series, path: Path, column: str) -> pd.Series:
    truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    out = []
    for value, line in zip(values, _lines(values.to_frame())):
        key = str(value).strip().lower()
        if key not in truth:
            raise DataError(f"{path} line {line}: {column} must be true/false (or yes/no, 1/0), got {value!r}")
        out.append(truth[key])
    return pd.Series(out, index=values.index, dtype=bool)


def _unique(values: pd.Series, path: Path, what: str) -> None:
    dup = values[values.duplicated()]
    if len(dup):
        raise DataError(f"{path}: duplicate {what} {sorted(set(dup))[:5]}")


def _inside(root: Path, file_name: str, where: str) -> Path:
    """`root / file_name`, refusing names that could reach outside `root` (absolute, `..`, backslashes, a symlink
    that resolves elsewhere)."""
    name = PurePosixPath(file_name)
    if name.is_absolute() or ".." in name.parts or "\\" in file_name or not name.parts:
        raise DataError(f"{where}: file_name {file_name!r} must be a relative path inside the dataset folder")
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise DataError(f"{where}: file_name {file_name!r} leads outside the dataset folder (a symlink?)")
    return path


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
            named = f"named correctly on {int(grp['named_correctly'].sum())}/{len(grp)}"
            reason = f"{named}; mistaken for {top.index[0]} ({top.iloc[0]}x)"
        else:
            reason = f"named correctly on {int(grp['named_correctly'].sum())}/{len(grp)}; no name given"
        rows.append(
            {
                "person_id": person_id,
                "trained": bool(grp["trained"].iloc[0]),
                "role": grp["role"].iloc[0] if "role" in grp else "known",
                "recognition_share": share,
                "kept": kept,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class Split:
    """Who is forgotten and who is retained (both drawn from the recognised people)."""

    forget: tuple[str, ...]
    retain: tuple[str, ...]

    def __post_init__(self):
        if not self.forget:
            raise DataError("the forget set is empty: name at least one person to forget")
        for name, ids in (("forget", self.forget), ("retain", self.retain)):
            dup = sorted({p for p in ids if list(ids).count(p) > 1})
            if dup:
                raise DataError(f"{name} set names {dup} more than once")
        overlap = set(self.forget) & set(self.retain)
        if overlap:
            raise DataError(f"people in both forget and retain sets: {sorted(overlap)}")

    def check(self, dataset: EntityDataset) -> None:
        """Refuse a split that cannot be unlearned on `dataset` (before any model is loaded): unknown people, and
        forget people without a seen photo (there would be nothing to train on, and they would be "forgotten"
        without a word)."""
        known = set(dataset.people["person_id"])
        unknown = [p for p in (*self.forget, *self.retain) if p not in known]
        if unknown:
            raise DataError(f"unknown person id(s) {unknown[:5]}; ids look like {sorted(known)[:3]}")
        seen = set(dataset.photos.loc[dataset.photos["photo_split"] == "seen", "person_id"])
        without = [p for p in self.forget if p not in seen]
        if without:
            raise DataError(
                f"forget person(s) {without} have no seen photo (photo_split 'seen'): unlearning trains on seen "
                "photos, so they cannot be unlearned"
            )


def make_splits(kept_ids, sizes=(5, 10, 20), seed: int = 0) -> dict[int, Split]:
    """Nested forget sets (5 ⊂ 10 ⊂ 20) drawn from the kept people; everyone else kept is retained."""
    kept = sorted(kept_ids)
    if sizes and max(sizes) >= len(kept):
        raise DataError(f"forget set of {max(sizes)} needs more than {len(kept)} recognised people")
    order = [kept[i] for i in np.random.default_rng(seed).permutation(len(kept))]
    return {n: Split(tuple(sorted(order[:n])), tuple(sorted(order[n:]))) for n in sorted(sizes)}


def recognition_by_split(identity_answers: pd.DataFrame) -> pd.DataFrame:
    """Per person: share of seen and of unseen (val + test) photos on which the model names them correctly."""
    frame = identity_answers.assign(photos=np.where(identity_answers["photo_split"] == "seen", "seen", "unseen"))
    index = ["person_id", "trained"] + (["role"] if "role" in frame else [])
    table = frame.pivot_table(index=index, columns="photos", values="named_correctly", aggfunc="mean").reset_index()
    table.columns.name = None
    return table


def recognition_summary(identity_answers: pd.DataFrame, recognition: pd.DataFrame) -> dict:
    """The original model's recognition in numbers (one definition for notebook 01 and the robustness check):
    known people named correctly on seen and on unseen (val + test) photos, how many people the filter keeps, and
    the shares of never-seen and anonymous people it drops (1.0 when there are none)."""
    known = identity_answers[identity_answers["role"] == "known"]
    unseen = known[known["photo_split"] != "seen"]
    seen = known[known["photo_split"] == "seen"]

    def dropped(role: str) -> float:
        group = recognition[recognition["role"] == role]
        return float((~group["kept"]).mean()) if len(group) else 1.0

    return {
        "unseen_recognition_accuracy": float(unseen["named_correctly"].mean()),
        "seen_recognition_accuracy": float(seen["named_correctly"].mean()),
        "n_unseen_photos": len(unseen),
        "kept_people": int(recognition["kept"].sum()),
        "known_people": int((recognition["role"] == "known").sum()),
        "never_trained_dropped_share": dropped("never_seen"),
        "anonymous_dropped_share": dropped("anonymous"),
    }
