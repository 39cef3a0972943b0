import os
import tempfile

# Caches of tests never touch the user's build/cache: set before pubg_lib.paths is imported.
os.environ.setdefault("PUBG_CACHE", tempfile.mkdtemp(prefix="pubg-test-cache-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# `make test` runs two pytest-xdist workers (the PUBG_CACHE above is set in the controller, so they share it). Each
# worker, and every notebook kernel it starts, uses one torch thread: two processes of two threads on two cores run
# more than twice as slowly as two of one.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smoke_cfgs():
    from pubg_lib.config import smoke_configs

    return smoke_configs(seed=0)


@pytest.fixture(scope="session")
def smoke_world(smoke_cfgs):
    from pubg_lib.entities import EntityDataset

    return EntityDataset.from_world(smoke_cfgs[0])


@pytest.fixture(scope="session")
def smoke_construction(smoke_cfgs):
    """A tiny world LLaVA pretrained for a few epochs (seconds), with the dataset built from it."""
    from pubg_lib.construction import construct

    world, model = smoke_cfgs
    return construct(world, model, min_share=0.0, forget_sizes=(2,), progress=False)


@pytest.fixture(scope="session")
def smoke_lvlm(smoke_construction):
    return smoke_construction.lvlm
