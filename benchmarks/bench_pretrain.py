"""How close pretraining the default world LLaVA comes to this machine's limit, and where the rest of its time goes.

    python benchmarks/bench_pretrain.py                  # model FLOPs utilisation, profile, bf16 (about 2 minutes)
    python benchmarks/bench_pretrain.py --full           # and the whole default pretraining, timed (about 10 min)
    python benchmarks/bench_pretrain.py --steps 4 --smoke  # the smoke world, to check the script

Measured side by side in one process, on the pretraining batches of the default world (a fresh model, the same
optimizer, clipping and schedule as `pretraining.pretrain`):
- the machine's fp32 matmul rate (square matmuls of 128 to 2048; the best is the attainable rate),
- the FLOPs of each measured step, counted by `torch.utils.flop_counter.FlopCounterMode` (forward and backward),
  and the achieved rate over the median step: the model FLOPs utilisation `mfu` = achieved / matmul rate, also on
  the answer and prompt tokens alone (`mfu_unpadded`: what padding wastes),
- where a step's time goes: its phases (forward, backward, clipping, optimizer) by wall clock, and inside them the
  operators by `torch.profiler` (matmul, attention, other operators, and outside any operator: Python, dispatch),
- the same steps under bf16 autocast (the CPU's AVX512-BF16): the speed-up, and the loss after them against fp32.

Writes data/results/bench_pretrain.json (not with --smoke).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear_backward")
ATTENTION = ("scaled_dot_product", "aten::_softmax", "flash_attention", "aten::_safe_softmax")


def matmul_rate(sizes=(128, 256, 512, 1024, 2048), seconds: float = 0.5) -> dict[int, float]:
    """fp32 GFLOP/s of an n × n by n × n matmul (2n³ FLOPs) for each n, each timed for about `seconds`."""
    import torch

    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        reps, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds or reps < 3:
            a @ b
            reps += 1
        rates[n] = 2 * n**3 * reps / elapsed / 1e9
    return rates


def pretraining_batches(smoke: bool, n_batches: int, seed: int = 0):
    """A fresh world LLaVA (as `pretraining.get_original_model` builds it, untrained), its model settings,
    `n_batches` of its pretraining batches (drawn as the first epoch draws them) and the number of steps of the whole
    pretraining (the schedule's length)."""
    import torch

    from pubg_lib.config import default_configs
    from pubg_lib.entities import EntityDataset
    from pubg_lib.models import (
        LVLM,
        build_processor,
        build_tiny_llava,
        build_tokenizer,
        collate,
        encode_example,
        world_corpus,
    )
    from pubg_lib.pretraining import WORLD_MODEL_NAME, pretraining_examples

    world_cfg, model_cfg = default_configs(smoke=smoke, seed=seed)
    dataset = EntityDataset.from_world(world_cfg)
    torch.manual_seed(model_cfg.seed)
    tokenizer = build_tokenizer(world_corpus(dataset))
    lvlm = LVLM(build_tiny_llava(tokenizer, model_cfg), build_processor(tokenizer, model_cfg), WORLD_MODEL_NAME)
    table = pretraining_examples(dataset, model_cfg)
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(model_cfg.seed)).tolist()
    batches = []
    for b in range(n_batches):
        rows = table.iloc[order[b * model_cfg.batch_size : (b + 1) * model_cfg.batch_size]]
        examples = [
            encode_example(lvlm, None if p is None or p != p else dataset.image(p), q, a)
            for p, q, a in zip(rows["photo_id"], rows["query"], rows["answer"])
        ]
        batches.append(collate(examples, lvlm.tokenizer.pad_token_id, "right"))
    return lvlm, model_cfg, batches, model_cfg.epochs * math.ceil(len(table) / model_cfg.batch_size)


class Trainer:
    """One pretraining step as `pretraining.pretrain` takes it (AdamW, warm-up and cosine, clipping at 1.0), timed
    by phase."""

    def __init__(self, model, cfg, total_steps: int, autocast_bf16: bool = False):
        import torch

        self.torch, self.model, self.bf16 = torch, model, autocast_bf16
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        warm = max(1, int(cfg.warmup_share * total_steps))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total_steps)))
        )
        model.train()

    def step(self, batch) -> tuple[float, dict[str, float]]:
        torch, phases = self.torch, {}
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.model(**batch).loss
        t1 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        t3 = time.perf_counter()
        self.opt.step()
        self.sched.step()
        t4 = time.perf_counter()
        phases.update(forward=t1 - t0, backward=t2 - t1, clip=t3 - t2, optimizer=t4 - t3)
        return float(loss.detach()), phases


def step_flops(model, batch) -> int:
    """FLOPs of one forward and backward pass on `batch`, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def operator_shares(trainer: Trainer, batches) -> dict[str, float]:
    """Shares of the wall time of `batches`' steps spent in matmul, attention and other operators (self CPU time,
    `torch.profiler`), and outside any operator (Python, dispatch, the rest)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for batch in batches:
            trainer.step(batch)
        wall = time.perf_counter() - t0
    sums = {"matmul": 0.0, "attention": 0.0, "other operators": 0.0}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue  # profiler ranges (Optimizer.step, autograd nodes) hold aten ops: count those once, by self time
        seconds = event.self_cpu_time_total / 1e6
        kind = (
            "matmul"
            if event.key in MATMUL
            else "attention"
            if any(a in event.key for a in ATTENTION)
            else "other operators"
        )
        sums[kind] += seconds
    shares = {k: v / wall for k, v in sums.items()}
    shares["outside operators (Python, dispatch)"] = max(0.0, 1 - sum(shares.values()))
    return shares


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12, help="measured steps of each kind (after 2 warm-up steps)")
    ap.add_argument("--smoke", action="store_true", help="the smoke world (seconds; for checking the script)")
    ap.add_argument("--full", action="store_true", help="also time the whole default pretraining (fresh cache)")
    args = ap.parse_args(argv)
    import torch

    from pubg_lib import paths
    from pubg_lib.io import read_json, write_json
    from pubg_lib.labels import IGNORE

    warm, n = 2, args.steps
    lvlm, cfg, batches, total_steps = pretraining_batches(args.smoke, warm + n)
    model = lvlm.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rates = matmul_rate()
    best_rate = max(rates.values()) * 1e9

    flops = [step_flops(model, b) for b in batches[warm:]]
    results, losses = {}, {}
    for name, bf16 in (("fp32", False), ("bf16_autocast", True)):
        model.load_state_dict(state)
        trainer = Trainer(model, cfg, total_steps, autocast_bf16=bf16)
        seconds, phases, losses[name] = [], [], []
        for i, batch in enumerate(batches):
            t0 = time.perf_counter()
            loss, phase = trainer.step(batch)
            if i >= warm:
                seconds.append(time.perf_counter() - t0)
                phases.append(phase)
            losses[name].append(loss)
        results[name] = {"median_step_seconds": statistics.median(seconds), "phases": phases}
    fp32 = results["fp32"]
    step_seconds = sum(
        statistics.median([p[k] for p in fp32["phases"]]) for k in ("forward", "backward", "clip", "optimizer")
    )
    phase_shares = {
        k: statistics.median([p[k] for p in fp32["phases"]]) / step_seconds
        for k in ("forward", "backward", "clip", "optimizer")
    }
    model.load_state_dict(state)
    shares = operator_shares(Trainer(model, cfg, total_steps), batches[warm : warm + min(3, n)])

    measured = batches[warm:]
    padded = sum(b["input_ids"].numel() for b in measured)
    real = sum(int(b["attention_mask"].sum()) for b in measured)
    answer = sum(int((b["labels"] != IGNORE).sum()) for b in measured)
    achieved = sum(flops) / (fp32["median_step_seconds"] * n)
    speedup = fp32["median_step_seconds"] / results["bf16_autocast"]["median_step_seconds"]
    out = {
        "torch_threads": torch.get_num_threads(),
        "matmul_gflops_by_size": {str(k): round(v, 1) for k, v in rates.items()},
        "matmul_gflops": max(rates.values()),
        "step_gflop_mean": sum(flops) / n / 1e9,
        "achieved_gflops": achieved / 1e9,
        "mfu": achieved / best_rate,
        "mfu_unpadded": achieved * real / padded / best_rate,
        "padding_share": 1 - real / padded,
        "answer_tokens_per_second": answer / (fp32["median_step_seconds"] * n),
        "median_step_seconds": fp32["median_step_seconds"],
        "phase_shares": phase_shares,
        "operator_shares": shares,
        "bf16_autocast": {
            "speedup": speedup,
            "median_step_seconds": results["bf16_autocast"]["median_step_seconds"],
            "loss_after_fp32": losses["fp32"][-1],
            "loss_after_bf16": losses["bf16_autocast"][-1],
            "kept": False,
            "why_not_kept": (
                f"slower than fp32 on this CPU ({speedup:.2f}x: the casts cost more than bf16 matmuls save at these "
                "widths)"
                if speedup < 1
                else "faster, but the world model's bars would have to be measured again on every seed and thread "
                "count (make check-world) before the committed world could change"
            ),
        },
        "steps_measured": n,
        "batch_size": cfg.batch_size,
    }
    if args.full:
        paths.CACHE = Path(tempfile.mkdtemp(prefix="pubg-bench-"))  # a fresh cache: pretrain, never load
        from pubg_lib.config import default_configs
        from pubg_lib.pretraining import get_original_model

        world_cfg, model_cfg = default_configs(smoke=args.smoke)
        t0 = time.perf_counter()
        _, record = get_original_model(world_cfg, model_cfg, progress=True)
        out["full_pretraining"] = {
            "pretrain_seconds": record["pretrain_seconds"],
            "answer_tokens_per_second": record["answer_tokens_per_second"],
            "wall_seconds_with_setup": time.perf_counter() - t0,
        }
    for k, v in out.items():
        print(f"{k:>26}: {v:.3f}" if isinstance(v, float) else f"{k:>26}: {v}")
    if not args.smoke:
        path = paths.RESULTS / "bench_pretrain.json"
        kept = {k: v for k, v in (read_json(path) if path.exists() else {}).items() if k == "full_pretraining"}
        write_json(path, {**kept, **out})
    return out


if __name__ == "__main__":
    main()
