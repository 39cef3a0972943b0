"""Each method's loss, term by term, against a hand computation on a fixed tiny batch.

For every registry entry the training loop's terms (one combined, padded forward) are compared with terms computed
here from scratch: one forward per example, the answer's log-probabilities picked by hand, the NPO and KL formulas
written out, the targets read from the unlearning data tables (private, random and reference answers, the
refusal, the retain answers). λ, γ and β take unusual values so that a weight left out or applied twice shows.
The schedule, gradient clipping and weight decay are checked by their effect on the optimiser.
"""

import math

import pytest
import torch

from pubg_lib import methods, prompts
from pubg_lib.labels import IGNORE
from pubg_lib.models import encode_example
from pubg_lib.reference import build_unlearning_data
from pubg_lib.unlearn import UnlearnConfig, UnlearningLoop

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
