"""Do the world model and the paper's claims hold on every seed and thread count? (`make check-world`)

On one machine pretraining repeats bit for bit, but a different thread count (or CPU kernel, or library version)
changes floating-point sums at the 1e-7 level, and training amplifies that into a different model. A number we
publish must hold on any of them. Two stages, both written to `data/results/world_robustness.json`:

- `world`: pretrain the default world for several seeds (each draws the people, their photos and the model's
  initialisation) on 1 and 2 threads, and measure each original model as notebook 01 does
  (`construction.original_abilities`); every variant must clear `BARS`.
- `claims`: on each seed's world (2 threads), the paper's comparison as notebook 05 makes it (one forget-set draw,
  each method's steps calibrated on its val photos) and its claims (`comparison.paper_claims`); notebook 05
  asserts on its own world only the claims that hold on every world here.

Each variant runs in its own process (a thread count is a per-process setting) with its own cache folder
(`build/cache/robustness/threads-N`: the model cache is keyed on settings and code, not on thread counts), one at
a time: two 2-thread processes on 2 cores each run more than twice as slowly.

    python -m pubg_lib.robustness                    # both stages: seeds 0 1 2, threads 1 2
    python -m pubg_lib.robustness --stage world --seeds 0 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import paths
from .comparison import calibrate_draws, compare, iso_privacy_settings, main_table, paper_claims
from .config import default_configs
from .construction import construct, original_abilities
from .io import read_json, write_json
from .metrics.clip_score import WorldClipConfig, world_clip
from .provenance import environment


class ClaimError(AssertionError):
    """A claim that should hold on every world does not hold on this one."""


# The bars every variant must reach (notebook 01 asserts lower ones on its own world: these leave the margin).
BARS = {
    "unseen_recognition_accuracy": 0.93,
    "never_trained_dropped_share": 0.9,
    "instructed_name_free_share": 0.95,
    "instructed_attribute_accuracy": 0.9,
    "heldout_paraphrase_recognition": 0.9,
    "text_only_fact_accuracy": 0.9,
    "declined_refusal_rate": 0.9,
}
# Measured and reported on every variant, without a bar: the seen/kept counts, and what the world model does not
# (yet) do well: answering "is this NAME ?" and refusing a held-out wording of a declined question (see the stored
# values; notebook 08 attacks unlearned models with these probes).
REPORTED = ["seen_recognition_accuracy", "kept_people", "confirmation_accuracy", "declined_heldout_refusal_rate"]
# Notebook 01 asserts each bar less this margin on its own world.
NOTEBOOK_MARGIN = 0.03
CLAIMS_THREADS = 2


def _world(seed: int, threads: int, smoke: bool):
    torch.set_num_threads(threads)
    world_cfg, model_cfg = default_configs(smoke=smoke, seed=seed)
    return construct(world_cfg, model_cfg, forget_sizes=(), progress=False)


def measure_variant(seed: int, threads: int, smoke: bool = False) -> dict:
    """Pretrain (or load) the world of `seed` with `threads` torch threads in this process and measure it as
    notebook 01 does (`construction.original_abilities`)."""
    t0 = time.perf_counter()
    con = _world(seed, threads, smoke)
    row = {"seed": seed, "threads": threads, **original_abilities(con)}
    row.update(
        pretrain_seconds=con.pretrain_record["pretrain_seconds"],
        final_loss=con.pretrain_record["final_loss"],
        seconds=time.perf_counter() - t0,
    )
    return row


def claims_on_world(seed: int, smoke: bool = False) -> dict:
    """The paper's claims on the world of `seed`, as notebook 05 makes them: on forget-set draw `seed`, each method
    at its stored iso-privacy learning rate and γ with its steps calibrated on the draw's val photos
    (`comparison.calibrate_draws`)."""
    con = _world(seed, CLAIMS_THREADS, smoke)
    n_forget = 2 if smoke else 5
    settings = iso_privacy_settings(**({"forget_batch": 2, "retain_batch": 2, "steps": 4} if smoke else {}))
    trial = {"max_steps": 4, "checkpoints": 2} if smoke else {}
    per_draw, steps, reached = calibrate_draws(con, settings, (seed,), n_forget, **trial)
    clip = world_clip(con.dataset, WorldClipConfig(epochs=5) if smoke else WorldClipConfig())  # as notebook 05
    answers = compare(con, settings, draws=(seed,), n_forget=n_forget, clip=clip, per_draw=per_draw)
    table = main_table(answers, reached=reached)
    return {
        "seed": seed,
        "claims": paper_claims(table),
        "table": table.round(4).to_dict("records"),
        "steps": steps.round(4).to_dict("records"),
    }


def _in_subprocess(args: list[str], threads: int, smoke: bool) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PUBG_CACHE": str(paths.CACHE / "robustness" / f"{'smoke-' if smoke else ''}threads-{threads}"),
    }
    cmd = [sys.executable, "-m", "pubg_lib.robustness", *args] + (["--smoke"] if smoke else [])
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_worlds(seeds=(0, 1, 2), threads=(1, 2), smoke: bool = False, variants=None) -> dict:
    """Measure every (seed, threads) variant (all combinations, or the `variants` pairs given), each in its own
    process, and summarise them (`summarise_variants`)."""
    variants = variants or [(s, t) for t in threads for s in seeds]
    return summarise_variants([_in_subprocess(["--variant", str(s), str(t)], t, smoke) for s, t in variants])


def summarise_variants(rows: list[dict]) -> dict:
    """The minimum, maximum and mean of each measure over the variants, and whether every bar holds on every
    variant. Rows may come from `measure_variant` runs made separately (`--from-rows`: other processes or
    machines)."""
    rows = sorted(rows, key=lambda r: (r["seed"], r["threads"]))
    measures = ["unseen_recognition_accuracy", *REPORTED, *BARS]
    summary = {
        m: {"min": min(r[m] for r in rows), "max": max(r[m] for r in rows), "mean": sum(r[m] for r in rows) / len(rows)}
        for m in dict.fromkeys(measures)
    }
    holds = {m: summary[m]["min"] >= bar for m, bar in BARS.items()}
    return {
        "variants": rows,
        "summary": summary,
        "bars": BARS,
        "bars_hold": holds,
        "all_bars_hold": all(holds.values()),
        "seeds": sorted({r["seed"] for r in rows}),
        "threads": sorted({r["threads"] for r in rows}),
        "variant_pairs": [[r["seed"], r["threads"]] for r in rows],
    }


def read_rows(files: list[str]) -> list[dict]:
    """Variant rows from the output of `--variant` runs: the last JSON line of each file is the row."""
    rows = []
    for path in files:
        lines = [line for line in Path(path).read_text().splitlines() if line.startswith("{")]
        if not lines:
            raise ValueError(f"{path} holds no variant row (the output of --variant SEED THREADS)")
        rows.append(json.loads(lines[-1]))
    return rows


def check_claims(seeds=(0, 1, 2), smoke: bool = False) -> dict:
    """The paper's claims on each world, and which hold on every one."""
    worlds = [_in_subprocess(["--claims-of", str(s)], CLAIMS_THREADS, smoke) for s in seeds]
    names = list(worlds[0]["claims"])
    return {
        "claims_by_world": {str(w["seed"]): w["claims"] for w in worlds},
        "tables_by_world": {str(w["seed"]): w["table"] for w in worlds},
        "steps_by_world": {str(w["seed"]): w["steps"] for w in worlds},
        "claims_on_every_world": {n: all(w["claims"][n]["holds"] for w in worlds) for n in names},
        "claim_seeds": list(seeds),
    }


def results_path(smoke: bool):
    results_dir, _ = paths.output_dirs(smoke)
    return results_dir / "world_robustness.json"


def bars_held_on_every_variant(smoke: bool = False) -> set[str]:
    """The bars `make check-world` found cleared by every variant it measured (empty if it has not run). Notebook 01
    asserts only these (less `NOTEBOOK_MARGIN`) and reports the others: a bar some seed or thread count misses
    would fail a second machine's reproduction."""
    path = results_path(smoke)
    if not path.exists():
        return set()
    return {name for name, holds in read_json(path).get("bars_hold", {}).items() if holds}


def claims_held_on_every_world(smoke: bool = False) -> set[str]:
    """The claims `make check-world` found holding on every world (empty while its claims stage has not run). A
    notebook asserts about its own world only these; every other claim it reports with whether it holds there."""
    path = results_path(smoke)
    if not path.exists():
        return set()
    return {name for name, holds in read_json(path).get("claims_on_every_world", {}).items() if holds}


def check_claims_held(claims: dict, smoke: bool = False) -> list[str]:
    """On one world (a notebook's), check the claims that `make check-world` found holding on every world it
    measured, and return their names; the other claims are only reported (one world is one draw of the world). A
    `ClaimError` names a claim that fails here."""
    asserted = sorted(set(claims) & claims_held_on_every_world(smoke))
    failed = [name for name in asserted if not claims[name]["holds"]]
    if failed:
        raise ClaimError(f"claims that hold on every world measured by make check-world fail here: {failed}")
    return asserted


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["world", "claims", "all"], default="all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--variants",
        nargs="+",
        metavar="SEED:THREADS",
        help="measure these (seed, threads) pairs instead of every combination of --seeds and --threads",
    )
    ap.add_argument(
        "--from-rows",
        nargs="+",
        metavar="FILE",
        help="summarise the rows printed by separate `--variant SEED THREADS` runs instead of measuring",
    )
    ap.add_argument("--smoke", action="store_true", help="the smoke world (results under build/smoke/)")
    ap.add_argument("--variant", type=int, nargs=2, metavar=("SEED", "THREADS"), help=argparse.SUPPRESS)
    ap.add_argument("--claims-of", type=int, metavar="SEED", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:  # one variant, in its own process: its row is the last line printed
        print(json.dumps(measure_variant(*args.variant, smoke=args.smoke)))
        return
    if args.claims_of is not None:
        print(json.dumps(claims_on_world(args.claims_of, smoke=args.smoke)))
        return
    path = results_path(args.smoke)
    result = read_json(path) if path.exists() else {}
    t0 = time.perf_counter()
    if args.stage in ("world", "all"):
        pairs = [tuple(int(x) for x in v.split(":")) for v in args.variants] if args.variants else None
        if args.from_rows:  # measured by separate `--variant` runs: their own timings are in their rows
            result.update(summarise_variants(read_rows(args.from_rows)), rows_from=list(args.from_rows))
        else:
            result.update(check_worlds(args.seeds, args.threads, args.smoke, pairs))
        for row in result["variants"]:
            print(
                f"seed {row['seed']} threads {row['threads']}: unseen {row['unseen_recognition_accuracy']:.3f} "
                f"seen {row['seen_recognition_accuracy']:.3f} kept {row['kept_people']}/{row['known_people']}"
            )
        result["world_seconds"] = time.perf_counter() - t0
    if args.stage in ("claims", "all"):
        t1 = time.perf_counter()
        result.update(check_claims(args.seeds, args.smoke))
        for name, holds in result["claims_on_every_world"].items():
            print(f"{'holds' if holds else 'fails'} on every world: {name}")
        result["claims_seconds"] = time.perf_counter() - t1
    result.update(smoke=args.smoke, provenance=environment())
    write_json(path, result)
    print(f"written to {path}")
    if args.stage in ("world", "all") and not result["all_bars_hold"] and not args.smoke:  # (smoke: no bars)
        raise SystemExit(f"a bar does not hold on every variant: {result['bars_hold']}")


if __name__ == "__main__":
    main()
