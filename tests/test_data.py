import numpy as np
import pandas as pd
import pytest

from pubg_lib.entities import DataError, EntityDataset, make_splits, recognition_filter


@pytest.fixture()
def exported(tmp_path, smoke_world):
    return smoke_world.export(tmp_path / "world")


def test_export_then_load_round_trip(exported, smoke_world):
    loaded = EntityDataset.from_folder(exported)
    cols = list(smoke_world.people.columns)
    pd.testing.assert_frame_equal(loaded.people[cols], smoke_world.people[cols], check_dtype=False)
    assert list(loaded.photos["photo_id"]) == list(smoke_world.photos["photo_id"])
    for photo_id in smoke_world.photos["photo_id"]:
        assert np.array_equal(np.asarray(loaded.image(photo_id)), np.asarray(smoke_world.image(photo_id)))
    assert loaded.description("p000_00") == smoke_world.description("p000_00")
    assert loaded.identity_answer("p000_00") == smoke_world.identity_answer("p000_00")


def test_export_refuses_to_overwrite(exported, smoke_world):
    with pytest.raises(FileExistsError):
        smoke_world.export(exported)


def test_corrupt_image_is_named(exported):
    victim = exported / "p001" / "p001_00.png"
    victim.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="p001_00.png"):
        EntityDataset.from_folder(exported)


def test_missing_column_is_named(exported):
    meta = pd.read_csv(exported / "metadata.csv").drop(columns=["photo_split"])
    meta.to_csv(exported / "metadata.csv", index=False)
    with pytest.raises(DataError, match="split"):
        EntityDataset.from_folder(exported)


def test_photo_of_unknown_person_is_named(exported):
    people = pd.read_csv(exported / "people.csv")
    people[people["person_id"] != "p002"].to_csv(exported / "people.csv", index=False)
    with pytest.raises(DataError, match="p002"):
        EntityDataset.from_folder(exported)


def test_unknown_person_lookup_is_named(smoke_world):
    with pytest.raises(KeyError, match="p999"):
        smoke_world.person("p999")
    with pytest.raises(KeyError, match="nobody"):
        smoke_world.photos_of(["nobody"])


def test_real_layout_without_attributes_loads(tmp_path, smoke_world):
    """A user's folder needs only person_id/name and file_name/person_id/split."""
    root = smoke_world.export(tmp_path / "w")
    pd.read_csv(root / "people.csv")[["person_id", "name"]].to_csv(root / "people.csv", index=False)
    pd.read_csv(root / "metadata.csv")[["file_name", "person_id", "photo_split"]].to_csv(
        root / "metadata.csv", index=False
    )
    ds = EntityDataset.from_folder(root)
    assert not ds.has_attributes
    assert ds.people["trained"].all()
    assert ds.identity_answer(ds.photos["photo_id"][0]).startswith("this is")
    with pytest.raises(DataError, match="ground-truth"):
        ds.attributes(ds.photos["photo_id"][0])


def _answers(rows):
    return pd.DataFrame(rows, columns=["photo_id", "person_id", "trained", "named_correctly", "named_ids"])


def test_recognition_filter_keeps_recognised_and_says_why():
    table = _answers(
        [
            ("a1", "a", True, True, "a"),
            ("a2", "a", True, True, "a"),
            ("a3", "a", True, False, ""),
            ("b1", "b", False, False, "a"),
            ("b2", "b", False, False, "a"),
            ("b3", "b", False, True, "b"),
        ]
    )
    out = recognition_filter(table, min_share=0.6).set_index("person_id")
    assert out.loc["a", "kept"] and not out.loc["b", "kept"]
    assert out.loc["a", "recognition_share"] == pytest.approx(2 / 3)
    assert "mistaken for a" in out.loc["b", "reason"]
    with pytest.raises(ValueError, match="min_share"):
        recognition_filter(table, min_share=1.5)


def test_forget_sets_are_nested_and_disjoint_from_retain():
    kept = [f"p{i:03d}" for i in range(30)]
    splits = make_splits(kept, (5, 10, 20), seed=3)
    assert set(splits[5].forget) < set(splits[10].forget) < set(splits[20].forget)
    for s in splits.values():
        assert not set(s.forget) & set(s.retain)
        assert set(s.forget) | set(s.retain) == set(kept)
    assert make_splits(kept, (5, 10, 20), seed=3) == splits
    with pytest.raises(DataError):
        make_splits(kept[:5], (5,))
