import os
import shutil
import tempfile

# Caches of tests never touch the user's build/cache: set before pubg_lib.paths is imported.
# The process that makes the folder (the controller under xdist; workers inherit it) removes it at the end.
CREATED_CACHE = None if "PUBG_CACHE" in os.environ else tempfile.mkdtemp(prefix="pubg-test-cache-")
if CREATED_CACHE:
    os.environ["PUBG_CACHE"] = CREATED_CACHE
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# `make test` runs two pytest-xdist workers (the PUBG_CACHE above is set in the controller, so they share it). Each
# worker, and every notebook kernel it starts, uses one torch thread: two processes of two threads on two cores run
# more than twice as slowly as two of one.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pytest  # noqa: E402


def pytest_sessionstart(session):
    """Under pytest-xdist (`make test`), the controller builds the smoke world (pretraining, then the original
    model's answers) before its workers start, on every core: the workers then load it, instead of one worker
    pretraining it on one core while the other waits for the cache lock."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not getattr(session.config.option, "numprocesses", None):
        return
    from pubg_lib.config import smoke_configs
    from pubg_lib.construction import SMOKE_FORGET_SIZES, construct

    construct(*smoke_configs(seed=0), forget_sizes=SMOKE_FORGET_SIZES, progress=False)  # as smoke_construction


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
    """The smoke world's LLaVA, pretrained in about a minute, with the dataset built from it as notebook 01 builds it:
    the recognition filter on, so every forget and retain person is one the original model names on unseen photos."""
    from pubg_lib.construction import SMOKE_FORGET_SIZES, construct

    world, model = smoke_cfgs
    return construct(world, model, forget_sizes=SMOKE_FORGET_SIZES, progress=False)


@pytest.fixture(scope="session")
def smoke_lvlm(smoke_construction):
    return smoke_construction.lvlm


def pytest_sessionfinish(session, exitstatus):
    if CREATED_CACHE:
        shutil.rmtree(CREATED_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """The two halves of the smoke pipeline first: under `--dist loadgroup` (`make test`) pytest-xdist hands out the
    first work units (each half is an xdist group) one per worker, so each worker starts with one half and the other
    tests fill in around them (together they are most of `make test`)."""
    first = [item for item in items if item.originalname == "test_whole_pipeline_runs_in_smoke_mode"]
    items[:] = first + [item for item in items if item not in first]
