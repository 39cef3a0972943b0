import itertools

import numpy as np
import pytest

from pubg_lib.config import ConfigError, WorldConfig
from pubg_lib.entities import EntityDataset
from pubg_lib.metrics.leakage import names_person
from pubg_lib.world import IDENTITY_FEATURES


def _pixels(ds, photo_id):
    return np.asarray(ds.image(photo_id))


def test_same_seed_gives_identical_world():
    cfg = WorldConfig(n_trained=6, n_never_trained=2, n_seen=2, n_val=1, n_test=1)
    a, b = EntityDataset.from_world(cfg), EntityDataset.from_world(cfg)
    assert a.people.equals(b.people) and a.photos.equals(b.photos)
    for photo_id in a.photos["photo_id"]:
        assert np.array_equal(_pixels(a, photo_id), _pixels(b, photo_id))
    assert a.fingerprint() == b.fingerprint()


def test_other_seed_gives_other_world():
    a = EntityDataset.from_world(WorldConfig(seed=0, n_trained=6, n_never_trained=2))
    b = EntityDataset.from_world(WorldConfig(seed=1, n_trained=6, n_never_trained=2))
    assert not a.people.equals(b.people)
    assert a.fingerprint() != b.fingerprint()


def test_default_world_sizes_and_identity_distance():
    ds = EntityDataset.from_world(WorldConfig())
    roles = ds.people["role"].value_counts()
    assert roles["known"] >= 40 and roles["never_seen"] >= 10 and roles.get("anonymous", 0) >= 0
    assert (ds.people["trained"] == (ds.people["role"] == "known")).all()
    counts = ds.photos.groupby(["person_id", "photo_split"]).size().unstack()
    assert (counts["seen"] >= 10).all() and ((counts["val"] + counts["test"]) >= 5).all()
    feats = ds.people[list(IDENTITY_FEATURES)].to_numpy()
    for i, j in itertools.combinations(range(len(feats)), 2):
        assert (feats[i] != feats[j]).sum() >= WorldConfig().min_identity_distance
    assert ds.people["name"].is_unique and ds.people["first_name"].is_unique and ds.people["last_name"].is_unique


def test_identity_is_constant_and_photo_attributes_vary(smoke_world):
    ds = smoke_world
    for _, grp in ds.photos.groupby("person_id"):
        assert grp["clothing_color"].nunique() + grp["background"].nunique() > 2
        attrs = [ds.attributes(p) for p in grp["photo_id"]]
        assert all(a["hair_color"] == attrs[0]["hair_color"] for a in attrs)


def test_description_reveals_no_private_fact_but_identity_answer_does(smoke_world):
    ds = smoke_world
    for photo_id, person_id in zip(ds.photos["photo_id"], ds.photos["person_id"]):
        person = ds.person(person_id)
        assert not names_person(ds.description(photo_id), person)
        assert person["profession"] not in ds.description(photo_id)
        assert names_person(ds.identity_answer(photo_id), person)


def test_impossible_identity_distance_is_refused():
    with pytest.raises(ConfigError, match="identity distance"):
        EntityDataset.from_world(WorldConfig(n_trained=30, n_never_trained=0, min_identity_distance=6))


def test_negative_sizes_are_refused():
    with pytest.raises(ConfigError, match="n_seen"):
        WorldConfig(n_seen=0)
