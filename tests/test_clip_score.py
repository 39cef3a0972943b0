import numpy as np
import pytest

from pubg_lib.metrics.clip_score import WorldClipConfig, world_clip


@pytest.fixture(scope="module")
def scorer(smoke_world):
    return world_clip(smoke_world, WorldClipConfig(epochs=15, batch_size=16), progress=False)


def test_scores_are_bounded_and_reward_the_right_description(scorer, smoke_world):
    ds = smoke_world
    ids = ds.photos.loc[ds.photos["photo_split"] == "seen", "photo_id"].tolist()
    right = scorer.score(ds.images(ids), [ds.description(p) for p in ids])
    wrong = scorer.score(ds.images(ids), [ds.description(p) for p in np.roll(ids, 5)])
    refusal = scorer.score(ds.images(ids), ["i am sorry , i cannot help with that request ."] * len(ids))
    for s in (right, wrong, refusal):
        assert np.all((s >= 0) & (s <= 1))
    assert right.mean() > wrong.mean() and right.mean() > refusal.mean()
    assert 0 <= scorer.record["val_retrieval_accuracy"] <= 1
    with pytest.raises(ValueError):
        scorer.score(ds.images(ids[:2]), ["a"])


def test_the_trained_clip_is_cached(scorer, smoke_world):
    again = world_clip(smoke_world, WorldClipConfig(epochs=15, batch_size=16), progress=False)
    assert again.record == scorer.record
    ids = smoke_world.photos["photo_id"][:3].tolist()
    texts = [smoke_world.description(p) for p in ids]
    assert np.allclose(
        again.score(smoke_world.images(ids), texts), scorer.score(smoke_world.images(ids), texts), atol=1e-6
    )
