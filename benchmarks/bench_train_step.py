"""Step time of PUBG against GA, and of a cached teacher against one recomputed every step, measured side by side;
and PUBG's loss with the forget prefix computed once (`pubg_lib.shared_prefix`, #17 item 1) against the loop's two
separate sequences, for time and for the loss itself.

    python benchmarks/bench_train_step.py [--steps 20] [--smoke]

Steps of the variants are interleaved (GA, PUBG cached, PUBG recomputing the teacher, GA, ...) so that machine noise
hits all of them alike; medians are compared. The shared prefix is timed as forward + backward of the loss (no
optimiser step) on the same batches as the loop's own `loss_terms`, beside GD's. Writes
data/results/bench_train_step.json.
"""

from __future__ import annotations

import argparse
import statistics
import time


def shared_loss_terms(loop, f_idx, r_idx) -> dict:
    """PUBG's loss terms as `UnlearningLoop.loss_terms` computes them, but with each forget photo's prefix (image
    and query) run once for both continuations, the private answer (GA) and the reference answer (guidance), on the
    loop's own encoded examples and cached teacher; the retain batch is a forward of its own."""
    from pubg_lib import losses, shared_prefix
    from pubg_lib.methods import ForgetContext
    from pubg_lib.models import collate, to_device
    from pubg_lib.unlearn import _teacher_batch

    cfg, ex = loop.cfg, loop.ex
    split = [shared_prefix.split_example(ex.target[i]) for i in f_idx]
    reference = [shared_prefix.split_example(ex.bg[i])[1] for i in f_idx]
    (lg_f, lb_f), (lg_b, lb_b) = shared_prefix.continuation_logits(
        loop.model, [p for p, _ in split], [[a for _, a in split], reference], loop.pad_id
    )
    context = ForgetContext(ref_logprob=loop.data.forget_ref_logprob[f_idx], config=cfg)
    terms = {loop.method.term: loop.method.loss(lg_f, lb_f, context)}
    t_ids, t_logp = _teacher_batch(loop.data.bg_teacher, f_idx, lb_b[:, 1:].cpu())
    terms["bg_kl"] = cfg.lam * losses.forward_kl(lg_b, lb_b, t_ids.to(lg_b.device), t_logp.to(lg_b.device))
    batch = collate([ex.retain[i] for i in r_idx], loop.pad_id, "right")
    labels = batch.pop("labels")
    logits = loop.model(**to_device(batch, loop.device)).logits
    terms["retain_nll"] = cfg.gamma * losses.nll_loss(logits, labels.to(logits.device))
    terms["total"] = sum(terms.values())
    return terms


def forward_backward(loop, terms_of, f_idx, r_idx) -> tuple[float, dict]:
    """Seconds for one forward and backward of the loss terms (gradients cleared after), and the terms."""
    t0 = time.perf_counter()
    terms = terms_of(f_idx, r_idx)
    terms["total"].backward()
    seconds = time.perf_counter() - t0
    loop.opt.zero_grad(set_to_none=True)
    return seconds, {k: float(v.detach()) for k, v in terms.items()}


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
    # the shared prefix: forward + backward on the same batches as PUBG's own loss terms (and GD's, beside them)
    pubg, gd = trainers["PUBG"], trainers["GD"]
    fb: dict[str, list[float]] = {"GD": [], "PUBG": [], "PUBG_shared": []}
    loss_diff = 0.0
    for step in range(args.steps + 2):
        f_idx, r_idx = pubg.ex.draw("forget", pubg.cfg.forget_batch), pubg.ex.draw("retain", pubg.cfg.retain_batch)
        t_gd, _ = forward_backward(gd, gd.loss_terms, f_idx, r_idx)
        t_apart, apart = forward_backward(pubg, pubg.loss_terms, f_idx, r_idx)
        t_shared, shared = forward_backward(pubg, lambda f, r: shared_loss_terms(pubg, f, r), f_idx, r_idx)
        loss_diff = max(loss_diff, *(abs(apart[k] - shared[k]) for k in apart))
        if step >= 2:
            for name, t in (("GD", t_gd), ("PUBG", t_apart), ("PUBG_shared", t_shared)):
                fb[name].append(t)
    fb_med = {k: statistics.median(v) for k, v in fb.items()}
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
        "forward_backward_median_seconds": fb_med,
        "pubg_shared_over_gd": fb_med["PUBG_shared"] / fb_med["GD"],
        "pubg_unshared_over_gd_forward_backward": fb_med["PUBG"] / fb_med["GD"],
        "shared_over_unshared": fb_med["PUBG_shared"] / fb_med["PUBG"],
        "max_abs_loss_diff": loss_diff,
        "shared_prefix_wired_into_the_loop": False,
        "steps_measured": args.steps,
        "batch": {"forget": settings["PUBG"].forget_batch, "retain": settings["PUBG"].retain_batch},
        "note": "GA's step holds only the forget batch; GD adds a retain batch, PUBG a retain batch and the guidance "
        "batch (the forget photos again, with the reference answers): three times GA's sequences per step.",
    }
    for k, v in med.items():
        print(f"{k:>16}: {v * 1000:8.1f} ms/step (median of {len(times[k])})")
    for k, v in fb_med.items():
        print(f"{k:>16}: {v * 1000:8.1f} ms forward + backward (median of {len(fb[k])})")
    keys = ("pubg_over_ga", "pubg_over_gd", "recompute_over_cached", "pubg_over_ga_per_sequence", "pubg_shared_over_gd")
    for k in (*keys, "shared_over_unshared", "max_abs_loss_diff"):
        print(f"{k:>22}: {out[k]:.3g}")
    if not args.smoke:
        write_json(paths.RESULTS / "bench_train_step.json", out)


if __name__ == "__main__":
    main()
