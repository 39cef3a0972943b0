"""Pretraining time of the default world LLaVA on this machine: wall time and answer tokens per second.

    python benchmarks/bench_pretrain.py            # full default pretraining into a fresh temporary cache
    python benchmarks/bench_pretrain.py --epochs 2 # a shorter measurement; prints the extrapolated full time

Writes data/results/bench_pretrain.json (full runs only).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of the default")
    args = ap.parse_args()
    os.environ["PUBG_CACHE"] = tempfile.mkdtemp(prefix="pubg-bench-")
    import torch

    from pubg_lib import paths
    from pubg_lib.config import default_configs
    from pubg_lib.io import write_json
    from pubg_lib.pretraining import get_original_model

    world, model = default_configs()
    full_epochs = model.epochs
    if args.epochs:
        model = dataclasses.replace(model, epochs=args.epochs)
    t0 = time.perf_counter()
    _, record = get_original_model(world, model, progress=True)
    total = time.perf_counter() - t0
    per_epoch = record["pretrain_seconds"] / model.epochs
    out = {
        "epochs": model.epochs,
        "pretrain_seconds": record["pretrain_seconds"],
        "answer_tokens_per_second": record["answer_tokens_per_second"],
        "parameters": record["parameters"],
        "seconds_per_epoch": per_epoch,
        "extrapolated_full_seconds": per_epoch * full_epochs,
        "wall_seconds_with_setup": total,
        "torch_threads": torch.get_num_threads(),
    }
    for k, v in out.items():
        print(f"{k:>28}: {v:,.2f}" if isinstance(v, float) else f"{k:>28}: {v}")
    if model.epochs == full_epochs:
        write_json(paths.RESULTS / "bench_pretrain.json", out)


if __name__ == "__main__":
    main()
