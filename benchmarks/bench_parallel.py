"""Independent unlearning runs on 2 cores: one process of 2 threads after the other, or 2 processes of 1 thread side by
side? (#17: `make reproduce` may run independent runs in parallel processes where that is faster.)

    python benchmarks/bench_parallel.py [--runs 4] [--steps 10] [--smoke]

Both ways train the same `--runs` PUBG runs (seeds 0, 1, ...; the default world's forget set of 5, its cached
unlearning data) for `--steps` steps each, measured in one invocation: first sequentially in this process at 2 torch
threads, then in a pool of 2 spawned processes at 1 thread each, the runs split between them. Reported: the seconds
of training alone (loading the world and data excluded, as a long-lived worker would pay it once) and the wall time
with it; the speed-up of the parallel way. Writes data/results/bench_parallel.json (not with --smoke).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def _setup(smoke: bool):
    from pubg_lib.config import default_configs
    from pubg_lib.construction import construct
    from pubg_lib.reference import build_unlearning_data

    world, model = default_configs(smoke=smoke)
    n = 2 if smoke else 5
    con = construct(world, model, forget_sizes=[n], progress=False)
    split = con.split(n)
    return con, build_unlearning_data(con.lvlm, con.dataset, split, model_id=str(con.model_dir), progress=False)


def train(seeds: list[int], steps: int, threads: int, smoke: bool) -> dict:
    """Train a PUBG run of `steps` steps for each seed at `threads` torch threads; seconds of setup and training."""
    import dataclasses

    import torch

    from pubg_lib.runs import method_settings
    from pubg_lib.unlearn import UnlearningLoop

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    con, data = _setup(smoke)
    setup = time.perf_counter() - t0
    base = method_settings(steps=steps)["PUBG"]
    t0 = time.perf_counter()
    for seed in seeds:
        loop = UnlearningLoop(con.lvlm, con.dataset, data, dataclasses.replace(base, seed=seed))
        for step in range(steps):
            loop.step(step)
    return {"setup_seconds": setup, "train_seconds": time.perf_counter() - t0, "threads": threads, "runs": len(seeds)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="the smoke world (for checking the script)")
    args = ap.parse_args(argv)
    from pubg_lib import paths
    from pubg_lib.io import write_json

    seeds = list(range(args.runs))
    _setup(args.smoke)  # build or load the world and the data once, before anything is timed
    t0 = time.perf_counter()
    sequential = train(seeds, args.steps, 2, args.smoke)
    sequential["wall_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        halves = list(pool.map(train, [seeds[0::2], seeds[1::2]], [args.steps] * 2, [1, 1], [args.smoke] * 2))
    wall = time.perf_counter() - t0
    parallel = {
        "train_seconds": max(h["train_seconds"] for h in halves),  # the two trained side by side
        "setup_seconds": max(h["setup_seconds"] for h in halves),
        "wall_seconds": wall,
        "processes": halves,
    }
    out = {
        "runs": args.runs,
        "steps_per_run": args.steps,
        "sequential_2_threads": sequential,
        "parallel_2_processes_1_thread": parallel,
        "speedup_training": sequential["train_seconds"] / parallel["train_seconds"],
        "speedup_wall": sequential["wall_seconds"] / parallel["wall_seconds"],
    }
    print(
        f"training: {sequential['train_seconds']:.1f} s sequential (2 threads) vs {parallel['train_seconds']:.1f} s "
        f"in 2 processes (1 thread): {out['speedup_training']:.2f}x; with setup {out['speedup_wall']:.2f}x"
    )
    if not args.smoke:
        write_json(paths.RESULTS / "bench_parallel.json", out)
    return out


if __name__ == "__main__":
    main()
