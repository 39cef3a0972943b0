"""Sampling the people and photos of the entity world, deterministically from a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import ConfigError, WorldConfig
from .attributes import BIRTHPLACES, FIRST_NAMES, IDENTITY_FEATURES, LAST_NAMES, PHOTO_ATTRIBUTES, PROFESSIONS

# Photo splits: seen photos train the original model (and unlearning); val photos choose settings; test photos
# are used only for the final evaluation. val and test together are the paper's "unseen" photos.
PHOTO_SPLITS = ("seen", "val", "test")


def sample_identities(n: int, min_distance: int, rng: np.random.Generator, max_tries: int = 200_000) -> list[dict]:
    """Draw `n` distinct identity-feature combinations, any two differing in >= `min_distance` features."""
    names = list(IDENTITY_FEATURES)
    chosen: list[tuple[int, ...]] = []
    tries = 0
    while len(chosen) < n:
        tries += 1
        if tries > max_tries:
            raise ConfigError(
                f"could not place {n} people at identity distance >= {min_distance} "
                f"(placed {len(chosen)}); lower min_identity_distance or the number of people"
            )
        cand = tuple(int(rng.integers(len(IDENTITY_FEATURES[f]))) for f in names)
        if all(sum(a != b for a, b in zip(cand, c)) >= min_distance for c in chosen):
            chosen.append(cand)
    return [{f: IDENTITY_FEATURES[f][i] for f, i in zip(names, c)} for c in chosen]


def sample_people(cfg: WorldConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_trained + cfg.n_anonymous + cfg.n_never_trained
    if n > min(len(FIRST_NAMES), len(LAST_NAMES)):
        raise ConfigError(f"the world has names for at most {min(len(FIRST_NAMES), len(LAST_NAMES))} people, asked {n}")
    identities = sample_identities(n, cfg.min_identity_distance, rng)
    first = rng.permutation(len(FIRST_NAMES))[:n]
    last = rng.permutation(len(LAST_NAMES))[:n]
    rows = []
    for i in range(n):
        person = {
            "person_id": f"p{i:03d}",
            "first_name": FIRST_NAMES[first[i]],
            "last_name": LAST_NAMES[last[i]],
            "profession": PROFESSIONS[int(rng.integers(len(PROFESSIONS)))],
            "birthplace": BIRTHPLACES[int(rng.integers(len(BIRTHPLACES)))],
            "role": "known"
            if i < cfg.n_trained
            else "anonymous"
            if i < cfg.n_trained + cfg.n_anonymous
            else "never_seen",
            "trained": i < cfg.n_trained,
            **identities[i],
        }
        person["name"] = f"{person['first_name']} {person['last_name']}"
        rows.append(person)
    cols = [
        "person_id",
        "name",
        "first_name",
        "last_name",
        "profession",
        "birthplace",
        "role",
        "trained",
        *IDENTITY_FEATURES,
    ]
    return pd.DataFrame(rows)[cols]


GLASSES_SHARE = 0.3  # share of photos in which a person wears glasses
HAT_SHARE = 0.25  # ... and a hat


def sample_photos(cfg: WorldConfig, people: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    counts = {"seen": cfg.n_seen, "val": cfg.n_val, "test": cfg.n_test}
    clothing, background = PHOTO_ATTRIBUTES["clothing_color"], PHOTO_ATTRIBUTES["background"]
    rows = []
    for person_id in people["person_id"]:
        k = 0
        for photo_split in PHOTO_SPLITS:
            for _ in range(counts[photo_split]):
                rows.append(
                    {
                        "photo_id": f"{person_id}_{k:02d}",
                        "person_id": person_id,
                        "photo_split": photo_split,
                        "clothing_color": clothing[int(rng.integers(len(clothing)))],
                        "background": background[int(rng.integers(len(background)))],
                        "glasses": "yes" if rng.random() < GLASSES_SHARE else "no",
                        "hat": "yes" if rng.random() < HAT_SHARE else "no",
                        "dx": round(float(rng.uniform(-0.04, 0.04)), 4),
                        "dy": round(float(rng.uniform(-0.04, 0.04)), 4),
                        "scale": round(float(rng.uniform(0.92, 1.08)), 4),
                        "seed": int(rng.integers(2**31 - 1)),
                    }
                )
                k += 1
    return pd.DataFrame(rows)
