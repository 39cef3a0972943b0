"""Batched (left-padded) against one-by-one generation throughput, measured side by side in one run.

    python benchmarks/bench_generate.py [--photos 64] [--batch-size 64] [--smoke]

Writes data/results/bench_generate.json (full runs).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()

    from pubg_lib import paths, prompts
    from pubg_lib.config import default_configs
    from pubg_lib.entities import EntityDataset
    from pubg_lib.io import write_json
    from pubg_lib.models import generate
    from pubg_lib.pretraining import get_original_model

    world, model = default_configs(smoke=args.smoke)
    dataset = EntityDataset.from_world(world)
    lvlm, _ = get_original_model(world, model, dataset=dataset)
    images = dataset.images(dataset.photos["photo_id"][: args.photos])
    generate(lvlm, images[:4], prompts.PAPER_QUERY, progress=False)  # warm-up
    timings = {"batched": [], "one_by_one": []}
    for _ in range(2):  # alternate so that machine noise hits both alike
        t0 = time.perf_counter()
        batched = generate(lvlm, images, prompts.PAPER_QUERY, batch_size=args.batch_size, progress=False)
        timings["batched"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        single = [generate(lvlm, [im], prompts.PAPER_QUERY, progress=False)[0] for im in images]
        timings["one_by_one"].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in timings.items()}
    out = {
        "photos": len(images),
        "batch_size": args.batch_size,
        "answers_per_second": {k: len(images) / v for k, v in best.items()},
        "batched_over_one_by_one_throughput": best["one_by_one"] / best["batched"],
        "same_answers": batched == single,
    }
    print(
        f"batched: {out['answers_per_second']['batched']:.1f} answers/s, one by one: "
        f"{out['answers_per_second']['one_by_one']:.1f} answers/s, "
        f"ratio {out['batched_over_one_by_one_throughput']:.1f}x, "
        f"same answers: {out['same_answers']}"
    )
    if not args.smoke:
        write_json(paths.RESULTS / "bench_generate.json", out)


if __name__ == "__main__":
    main()
