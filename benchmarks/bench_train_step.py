"""Step time of PUBG against GA, and of a cached teacher against one recomputed every step, measured side by side.

    python benchmarks/bench_train_step.py [--steps 20] [--smoke]

Steps of the three variants are interleaved (GA, PUBG cached, PUBG recomputing the teacher, GA, ...) so that
machine noise hits all of them alike; medians are compared. Writes data/results/bench_train_step.json.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="the smoke world (seconds; for checking the script)")
    args = ap.parse_args()

    from pubg_lib import paths
    from pubg_lib.config import default_configs
    from pubg_lib.construction import construct
    from pubg_lib.io import write_json
    from pubg_lib.reference import build_unlearning_data
    from pubg_lib.runs import method_settings
    from pubg_lib.unlearn import UnlearningLoop

    world, model = default_configs(smoke=args.smoke)
    con = construct(world, model, forget_sizes=[2] if args.smoke else [5])
    split = con.split(2 if args.smoke else 5)
    data = build_unlearning_data(con.lvlm, con.dataset, split, model_id=str(con.model_dir))
    settings = method_settings()
    trainers = {
        "GA": UnlearningLoop(con.lvlm, con.dataset, data, settings["GA"]),
        "GD": UnlearningLoop(con.lvlm, con.dataset, data, settings["GD"]),
        "PUBG": UnlearningLoop(con.lvlm, con.dataset, data, settings["PUBG"]),
        "PUBG_recompute": UnlearningLoop(con.lvlm, con.dataset, data, settings["PUBG"], teacher="recompute"),
    }
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for step in range(args.steps + 2):
        for name, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.step(step)
            if step >= 2:  # two warm-up steps
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    b = settings["PUBG"]
    sequences = {
        "GA": b.forget_batch,
        "GD": b.forget_batch + b.retain_batch,
        "PUBG": 2 * b.forget_batch + b.retain_batch,
    }
    out = {
        "median_step_seconds": med,
        "pubg_over_ga": med["PUBG"] / med["GA"],
        "pubg_over_gd": med["PUBG"] / med["GD"],
        "recompute_over_cached": med["PUBG_recompute"] / med["PUBG"],
        "sequences_per_step": sequences,
        "pubg_over_ga_per_sequence": (med["PUBG"] / sequences["PUBG"]) / (med["GA"] / sequences["GA"]),
        "steps_measured": args.steps,
        "batch": {"forget": settings["PUBG"].forget_batch, "retain": settings["PUBG"].retain_batch},
        "note": "GA's step holds only the forget batch; GD adds a retain batch, PUBG a retain batch and the guidance "
        "batch (the forget photos again, with the reference answers): three times GA's sequences per step.",
    }
    for k, v in med.items():
        print(f"{k:>16}: {v * 1000:8.1f} ms/step (median of {len(times[k])})")
    for k in ("pubg_over_ga", "pubg_over_gd", "recompute_over_cached", "pubg_over_ga_per_sequence"):
        print(f"{k:>22}: {out[k]:.2f}")
    if not args.smoke:
        write_json(paths.RESULTS / "bench_train_step.json", out)


if __name__ == "__main__":
    main()
