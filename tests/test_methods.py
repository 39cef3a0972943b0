"""Each method's loss, term by term, against a hand computation on a fixed tiny batch.

For every registry entry the training loop's terms (one combined, padded forward) are compared with terms computed
here from scratch: one forward per example, the answer's log-probabilities picked by hand, the NPO and KL formulas
written out, the targets read from the unlearning data tables (private, random and reference answers, the
refusal, the retain answers). λ, γ and β take unusual values so that a weight left out or applied twice shows.
The schedule, gradient clipping and weight decay are checked by their effect on the optimiser; the loop's parts
(where cached teacher rows land, the example draws, the collapse diagnostics, two processes) on crafted inputs.
"""

import math

import pandas as pd
import pytest
import torch

from pubg_lib import methods, prompts
from pubg_lib.labels import IGNORE
from pubg_lib.models import encode_example
from pubg_lib.reference import TeacherCache, build_unlearning_data
from pubg_lib.unlearn import (
    COLLAPSE_FORGET_MARGIN,
    COLLAPSE_RETAIN_DROP,
    UnlearnConfig,
    UnlearningDiverged,
    UnlearningLoop,
    _Examples,
    _teacher_batch,
    collapse_diagnostics,
)

LAM, GAMMA, BETA = 0.37, 2.3, 0.41
F_IDX, R_IDX = [0, 1], [1, 0]

# The terms each method must log (besides "total"), and which targets they are computed on.
EXPECTED_TERMS = {
    "GA": {"ga"},
    "GD": {"ga", "retain_nll"},
    "NPO": {"npo", "retain_nll"},
    "RANDOM": {"nll_random", "retain_nll"},
    "REJECT": {"nll_refusal", "retain_nll"},
    "BG": {"bg_kl", "retain_nll"},
    "PUBG": {"ga", "bg_kl", "retain_nll"},
}


@pytest.fixture(scope="module")
def data(smoke_construction):
    con = smoke_construction
    return build_unlearning_data(con.lvlm, con.dataset, con.split(2), model_id=str(con.model_dir), progress=False)


def _cfg(method, **kw):
    return UnlearnConfig(
        **{
            **dict(
                method=method,
                steps=4,
                forget_batch=2,
                retain_batch=2,
                learning_rate=1e-2,
                lam=LAM,
                gamma=GAMMA,
                npo_beta=BETA,
                seed=0,
            ),
            **kw,
        }
    )


def _answer_logprobs(model, lvlm, dataset, photo_id, query, answer):
    """log p(answer token) at each answer position, and the full log-softmax there, from one unpadded forward."""
    ex = encode_example(lvlm, dataset.image(photo_id), query, answer)
    inputs = {k: (torch.tensor([v]) if k == "input_ids" else v) for k, v in ex.items() if k != "labels"}
    logits = model(**inputs).logits[0].double()
    labels = torch.tensor(ex["labels"])
    positions = [t for t in range(len(labels) - 1) if labels[t + 1] != IGNORE]
    logsm = torch.log_softmax(logits[positions], dim=-1)
    picked = logsm[torch.arange(len(positions)), labels[[t + 1 for t in positions]]]
    return picked, logsm


def _by_hand(trainer, con, data, method):
    """The weighted terms of `method` on examples F_IDX / R_IDX, from scratch."""
    model, lvlm, ds = trainer.model, con.lvlm, con.dataset
    forget, retain = data.forget, data.retain
    out = {}
    with torch.no_grad():

        def mean_logprob(rows, table, answer_of):
            return [
                _answer_logprobs(model, lvlm, ds, table.loc[i, "photo_id"], table.loc[i, "query"], answer_of(i))[0]
                for i in rows
            ]

        if method in ("GA", "GD", "PUBG"):
            out["ga"] = (
                sum(lp.mean() for lp in mean_logprob(F_IDX, forget, lambda i: forget.loc[i, "private_answer"])) / 2
            )
        if method == "NPO":
            sums = mean_logprob(F_IDX, forget, lambda i: forget.loc[i, "private_answer"])
            ratios = [s.sum() - data.forget_ref_logprob[i].double() for s, i in zip(sums, F_IDX)]
            out["npo"] = sum(-(2 / BETA) * torch.nn.functional.logsigmoid(-BETA * r) for r in ratios) / 2
        if method == "RANDOM":
            out["nll_random"] = (
                -sum(lp.mean() for lp in mean_logprob(F_IDX, forget, lambda i: forget.loc[i, "random_answer"])) / 2
            )
        if method == "REJECT":
            out["nll_refusal"] = -sum(lp.mean() for lp in mean_logprob(F_IDX, forget, lambda i: prompts.REFUSAL)) / 2
        if method in ("BG", "PUBG"):
            kls = []
            for i in F_IDX:  # the student sees q, not q ⊕ c; the teacher's distribution comes from the cache
                _, logsm = _answer_logprobs(
                    model,
                    lvlm,
                    ds,
                    forget.loc[i, "photo_id"],
                    forget.loc[i, "query"],
                    forget.loc[i, "reference_answer"],
                )
                t_logp = data.bg_teacher.logprobs[i].double()
                t_ids = data.bg_teacher.ids[i].long()
                student = logsm.gather(-1, t_ids)
                kls.append((t_logp.exp() * (t_logp - student)).sum(-1).mean())
            out["bg_kl"] = LAM * sum(kls) / 2
        if methods.get_method(method).uses_retain:
            lps = [
                _answer_logprobs(
                    model, lvlm, ds, retain.loc[i, "photo_id"], retain.loc[i, "query"], retain.loc[i, "answer"]
                )[0]
                for i in R_IDX
            ]
            out["retain_nll"] = GAMMA * -sum(lp.mean() for lp in lps) / 2
    return out


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_each_method_logs_its_terms_with_their_weights(method, smoke_construction, data):
    con = smoke_construction
    trainer = UnlearningLoop(con.lvlm, con.dataset, data, _cfg(method))
    with torch.no_grad():
        terms = trainer.loss_terms(F_IDX, R_IDX)
    assert set(terms) - {"total"} == EXPECTED_TERMS[method]
    expected = _by_hand(trainer, con, data, method)
    assert set(expected) == EXPECTED_TERMS[method]
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-5), name
    assert terms["total"].item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-4, abs=1e-5)


def test_every_registry_entry_is_covered():
    assert set(EXPECTED_TERMS) == set(methods.METHODS)


def test_the_retain_kl_uses_the_original_models_distribution(smoke_construction, data):
    con = smoke_construction
    trainer = UnlearningLoop(con.lvlm, con.dataset, data, _cfg("PUBG", retain_loss="kl"))
    with torch.no_grad():
        terms = trainer.loss_terms(F_IDX, R_IDX)
    assert "retain_kl" in terms and "retain_nll" not in terms
    # before any step the student is the original model, so its KL from the original on retain answers is zero
    assert terms["retain_kl"].item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    "method,weights,absent",
    [("PUBG", {"lam": 0.0}, "bg_kl"), ("PUBG", {"gamma": 0.0}, "retain_nll"), ("GD", {"gamma": 0.0}, "retain_nll")],
)
def test_a_zero_weight_drops_its_term(method, weights, absent, smoke_construction, data):
    con = smoke_construction
    with torch.no_grad():
        terms = UnlearningLoop(con.lvlm, con.dataset, data, _cfg(method, **weights)).loss_terms(F_IDX, R_IDX)
    assert absent not in terms


def test_a_small_positive_weight_keeps_its_term(smoke_construction, data):
    con = smoke_construction
    with torch.no_grad():
        terms = UnlearningLoop(con.lvlm, con.dataset, data, _cfg("PUBG", lam=0.5, gamma=0.5)).loss_terms(F_IDX, R_IDX)
        whole = UnlearningLoop(con.lvlm, con.dataset, data, _cfg("PUBG", lam=1.0, gamma=1.0)).loss_terms(F_IDX, R_IDX)
    assert terms["bg_kl"].item() == pytest.approx(0.5 * whole["bg_kl"].item(), rel=1e-5)
    assert terms["retain_nll"].item() == pytest.approx(0.5 * whole["retain_nll"].item(), rel=1e-5)


def test_a_step_reports_its_own_time_and_a_diverged_step_says_what_it_did(smoke_construction, data, tmp_path):
    import time

    con = smoke_construction
    loop = UnlearningLoop(con.lvlm, con.dataset, data, _cfg("GA"))
    t0 = time.perf_counter()
    row = loop.step(0)
    assert 0 < row["step_seconds"] <= time.perf_counter() - t0 and math.isfinite(row["grad_norm"])
    for name, p in loop.peft_model.named_parameters():  # a NaN weight makes the next loss NaN
        if "lora_B" in name:
            with torch.no_grad():
                p.fill_(float("nan"))
    with pytest.raises(UnlearningDiverged) as raised:
        loop.step(1)  # no folder given: restored in memory, nothing written
    assert str(raised.value).endswith("the last good adapter was restored")
    assert all(torch.isfinite(p).all() for n, p in loop.peft_model.named_parameters() if "lora_" in n)
    for name, p in loop.peft_model.named_parameters():
        if "lora_B" in name:
            with torch.no_grad():
                p.fill_(float("nan"))
    with pytest.raises(UnlearningDiverged) as raised:
        loop.step(1, last_good_dir=tmp_path / "good")
    assert str(raised.value).endswith(f"the last good adapter was restored and saved to {tmp_path / 'good'}")
    assert (tmp_path / "good" / "adapter_model.safetensors").exists()


def test_the_npo_beta_reaches_the_loss(smoke_construction, data):
    con = smoke_construction
    with torch.no_grad():
        a = UnlearningLoop(con.lvlm, con.dataset, data, _cfg("NPO", npo_beta=0.1)).loss_terms(F_IDX, R_IDX)["npo"]
        b = UnlearningLoop(con.lvlm, con.dataset, data, _cfg("NPO", npo_beta=2.0)).loss_terms(F_IDX, R_IDX)["npo"]
    # at θ = θ*, NPO is (2/β) log 2 whatever the answers: it must move with β
    assert a.item() == pytest.approx(2 / 0.1 * math.log(2), rel=1e-4)
    assert b.item() == pytest.approx(2 / 2.0 * math.log(2), rel=1e-4)


def _lr(trainer):
    return trainer.opt.param_groups[0]["lr"]


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_the_learning_rate_follows_its_schedule(schedule, smoke_construction, data):
    con = smoke_construction
    cfg = _cfg("GA", lr_schedule=schedule, steps=4, learning_rate=0.02)
    trainer = UnlearningLoop(con.lvlm, con.dataset, data, cfg)
    for k in range(4):
        expected = 0.02 * (0.5 * (1 + math.cos(math.pi * k / 4)) if schedule == "cosine" else 1.0)
        assert _lr(trainer) == pytest.approx(expected), k
        trainer.step(k)
    assert _lr(trainer) == pytest.approx(0.0 if schedule == "cosine" else 0.02, abs=1e-12)


def test_gradients_are_clipped_to_max_grad_norm(smoke_construction, data):
    con = smoke_construction
    trainer = UnlearningLoop(con.lvlm, con.dataset, data, _cfg("GA", max_grad_norm=1e-3))
    row = trainer.step(0)
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.trainable if p.grad is not None]))
    assert row["grad_norm"] > 1e-3  # the norm before clipping is what the row logs
    assert after.item() == pytest.approx(1e-3, rel=1e-3)


def test_weight_decay_is_decoupled_and_applied(smoke_construction, data):
    """AdamW: with decay wd each parameter also shrinks by lr·wd·p per step, independently of the gradient step."""
    con = smoke_construction
    runs = {}
    for wd in (0.0, 0.5):
        trainer = UnlearningLoop(con.lvlm, con.dataset, data, _cfg("GA", weight_decay=wd, learning_rate=0.01))
        before = {n: p.detach().clone() for n, p in trainer.peft_model.named_parameters() if p.requires_grad}
        trainer.step(0)
        runs[wd] = (
            before,
            {n: p.detach().clone() for n, p in trainer.peft_model.named_parameters() if p.requires_grad},
        )
    (b0, a0), (b1, a1) = runs[0.0], runs[0.5]
    checked = 0
    for name in b0:
        assert torch.equal(b0[name], b1[name])
        assert torch.allclose(a0[name] - a1[name], 0.01 * 0.5 * b0[name], atol=1e-7), name
        checked += int(b0[name].abs().sum() > 0)
    assert checked > 0  # LoRA A matrices start non-zero, so the decay is visible on them


def test_the_methods_table_shows_every_registry_entry_as_it_is():
    rows = {r["method"]: r for r in methods.table()}
    assert set(rows) == set(methods.METHODS)
    for name, m in methods.METHODS.items():
        assert rows[name]["forget term"] == (m.term or "–")
        assert rows[name]["guidance (λ)"] == ("yes" if m.uses_bg else "no")
        assert rows[name]["retain (γ)"] == ("yes" if m.uses_retain else "no")
    assert rows["REJECT"]["on"] == "the refusal" and rows["PUBG"]["forget term"] == "ga"


def test_a_method_entry_is_checked_when_it_is_made_and_found_once_registered(monkeypatch):
    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))
    with pytest.raises(ValueError, match="go together"):
        methods.Method("X", "x", "ga", None, methods.gradient_ascent, False, False)
    with pytest.raises(ValueError, match="go together"):
        methods.Method("X", "x", None, "private", None, False, False)
    with pytest.raises(ValueError, match="go together"):
        methods.Method("X", "x", "ga", "private", None, False, False)
    with pytest.raises(ValueError, match="unknown target 'nowhere'"):
        methods.Method("X", "x", "ga", "nowhere", methods.gradient_ascent, False, False)
    methods.Method("BGONLY", "guidance alone", None, None, None, True, True)  # no forget term at all: allowed
    toy = methods.register(methods.Method("TOY", "toy", "toy", "refusal", methods.fit_target, True, False))
    assert methods.get_method("TOY") is toy and methods.METHODS["TOY"] is toy
    with pytest.raises(KeyError, match="NOPE"):
        methods.get_method("NOPE")


def test_the_methods_table_says_what_each_method_does():
    rows = {r["method"]: r for r in methods.table()}
    for name, m in methods.METHODS.items():
        assert rows[name]["what it does"] == m.summary
        assert rows[name]["on"] == (methods.TARGET_MEANING[m.target] if m.target else "–")
    assert list(rows["PUBG"]) == ["method", "what it does", "forget term", "on", "guidance (λ)", "retain (γ)"]


# The loop's parts on crafted inputs.


def _teacher(lengths, k=4):
    ids = [torch.arange(n * k).reshape(n, k) % 7 for n in lengths]
    logps = [torch.log_softmax(torch.randn(n, k), -1) for n in lengths]
    return TeacherCache(ids, logps, torch.zeros(len(lengths)))


def test_teacher_rows_land_on_the_answer_positions_and_the_rest_is_a_uniform_placeholder():
    teacher = _teacher([2, 3])
    shifted = torch.tensor([[IGNORE, 1, 2, 3], [IGNORE, 5, 6, IGNORE]])
    ids, logp = _teacher_batch(teacher, [1, 0], shifted)  # batch row 0 holds cached example 1
    assert ids.shape == logp.shape == (2, 4, 4)
    assert torch.equal(ids[0, 1:4], teacher.ids[1]) and torch.equal(ids[1, 1:3], teacher.ids[0])
    assert torch.equal(logp[0, 1:4], teacher.logprobs[1])
    # outside the answer: a valid (uniform) distribution, so that nothing non-finite can reach the loss
    assert torch.allclose(logp[0, 0].exp(), torch.full((4,), 1 / 4)) and torch.allclose(
        logp[1, 3].logsumexp(-1), torch.zeros(())
    )
    one_ids, _ = _teacher_batch(teacher, [0], shifted[1:, :3])  # a single example works too
    assert one_ids.shape == (1, 3, 4)


def test_a_teacher_row_of_the_wrong_length_is_refused_with_both_lengths():
    teacher = _teacher([3])
    with pytest.raises(RuntimeError, match="teacher cache has 3 answer positions, batch has 2"):
        _teacher_batch(teacher, [0], torch.tensor([[IGNORE, 5, 6]]))


UNIFORM = -math.log(100)


def _dynamics(forget, retain, grad_norms=(1.0, 1.0)):
    """Probes at steps 0, 5 and 10 (the last row has no step taken, so its loss columns are NaN), none at 2."""
    return pd.DataFrame(
        {
            "step": [0, 2, 5, 10],
            "forget_logprob": [forget[0], math.nan, forget[1], forget[2]],
            "retain_logprob": [retain[0], math.nan, retain[1], retain[2]],
            "total": [1.0, 1.0, 1.0, math.nan],
            "grad_norm": [grad_norms[0], 1.0, grad_norms[1], math.nan],
        }
    )


def test_a_healthy_run_is_not_collapsed_and_reports_its_first_and_last_probe():
    d = collapse_diagnostics(_dynamics((-1.0, -3.0, -4.0), (-1.0, -1.5, -1.2)), vocab_size=100)
    assert d == {
        "collapsed": False,
        "reasons": [],
        "forget_logprob_start": -1.0,
        "forget_logprob_end": -4.0,
        "retain_logprob_start": -1.0,
        "retain_logprob_end": -1.2,
        "uniform_logprob": pytest.approx(UNIFORM),
    }


def test_each_collapse_rule_fires_past_its_threshold_and_not_at_it():
    at_forget = UNIFORM - COLLAPSE_FORGET_MARGIN
    assert not collapse_diagnostics(_dynamics((-1.0, -2.0, at_forget), (-1.0, -1.0, -1.0)), 100)["collapsed"]
    assert not collapse_diagnostics(_dynamics((-1.0, -2.0, UNIFORM - 1), (-1.0, -1.0, -1.0)), 100)["collapsed"]
    d = collapse_diagnostics(_dynamics((-1.0, -2.0, at_forget - 0.5), (-1.0, -1.0, -1.0)), 100)
    assert d["collapsed"] and d["reasons"] == [
        f"forget log-likelihood {at_forget - 0.5:.1f} nats/token is far below a uniform guess ({UNIFORM:.1f})"
    ]
    assert not collapse_diagnostics(_dynamics((-1.0, -1.0, -1.0), (-1.0, -5.0, -1.0 - COLLAPSE_RETAIN_DROP)), 100)[
        "collapsed"
    ]  # (the middle probe fell further, but the rule compares the first and the last)
    d = collapse_diagnostics(_dynamics((-1.0, -1.0, -1.0), (-1.0, -1.0, -3.5)), 100)
    assert d["reasons"] == ["retain log-likelihood fell from -1.00 to -3.50 nats/token"]
    d = collapse_diagnostics(_dynamics((-1.0, -1.0, -1.0), (-1.0, -1.0, -1.0), grad_norms=(1.0, math.inf)), 100)
    assert d["reasons"] == ["a gradient norm was not finite"]


def test_dynamics_without_gradient_norms_are_judged_on_their_probes():
    dynamics = _dynamics((-1.0, -1.0, -1.0), (-1.0, -1.0, -1.0)).drop(columns="grad_norm")
    assert collapse_diagnostics(dynamics, 100)["collapsed"] is False


def _examples(n_forget: int, n_retain: int, seed: int = 0):
    """The index sampler of a run, without encoding anything (its draws depend only on the pool sizes and the seed)."""
    ex = _Examples.__new__(_Examples)
    ex.private, ex.retain = [None] * n_forget, [None] * n_retain
    ex.gen = torch.Generator().manual_seed(seed)
    ex._queues = {"forget": [], "retain": []}
    return ex


def test_draws_cycle_through_each_pool_without_repeats_within_an_epoch():
    ex = _examples(3, 10)
    retain = [ex.draw("retain", 5) for _ in range(2)]
    assert all(len(d) == len(set(d)) == 5 for d in retain)
    assert sorted(retain[0] + retain[1]) == list(range(10))  # one epoch of the retain pool, its own size
    assert len(ex.draw("forget", 5)) == 3 and len(ex.draw("forget", 2)) == 2  # never more than the pool holds


def test_draws_follow_the_runs_seed_not_the_global_generator():
    torch.manual_seed(1)
    first = _examples(4, 7, seed=3).draw("retain", 7)
    torch.manual_seed(2)
    assert _examples(4, 7, seed=3).draw("retain", 7) == first


class _TwoProcesses:
    """What one of two processes sees: it is process 1, and the other's finite-loss flag is `other`."""

    def __init__(self, other: float):
        from accelerate import Accelerator

        outer = self

        class View(Accelerator):
            num_processes = 2
            process_index = 1
            is_main_process = False

            def reduce(self, tensor, reduction="sum", scale=1.0):  # accelerate's signature and default
                assert reduction == "sum", reduction
                outer.reduced = True
                return tensor + other

        self.accelerator, self.reduced = View(), False


def test_each_process_trains_on_its_slice_and_all_stop_when_one_diverged(smoke_construction, data):
    con = smoke_construction
    cfg = UnlearnConfig(method="GA", steps=2, forget_batch=2, retain_batch=2, seed=0)
    view = _TwoProcesses(other=1.0)  # the other process's loss is finite: a normal step
    loop = UnlearningLoop(con.lvlm, con.dataset, data, cfg, accelerator=view.accelerator)
    assert loop.shard([0, 1, 2, 3, 4]) == [1, 3]  # process 1 of 2 takes examples 1, 3, ...
    assert math.isfinite(loop.step(0)["total"]) and view.reduced
    view = _TwoProcesses(other=0.0)  # the other process's loss was not finite: this one stops too
    loop = UnlearningLoop(con.lvlm, con.dataset, data, cfg, accelerator=view.accelerator)
    with pytest.raises(UnlearningDiverged):
        loop.step(0)
