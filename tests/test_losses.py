"""Loss terms against hand computations, gradcheck in float64, and the direction of one optimisation step."""

import math

import pytest
import torch

from pubg_lib import losses

torch.manual_seed(0)


def _toy(batch=2, length=5, vocab=4, dtype=torch.float64):
    logits = torch.randn(batch, length, vocab, dtype=dtype)
    labels = torch.tensor([[-100, -100, 1, 2, 3], [-100, 0, 3, -100, -100]])[:batch, :length]
    return logits, labels


def test_ga_matches_hand_computation():
    logits, labels = _toy()
    logp = torch.log_softmax(logits, -1)
    # sequence 0: positions 1,2,3 predict labels 1,2,3 (labels at t+1); sequence 1: positions 0,1 predict 0,3
    s0 = (logp[0, 1, 1] + logp[0, 2, 2] + logp[0, 3, 3]) / 3
    s1 = (logp[1, 0, 0] + logp[1, 1, 3]) / 2
    assert losses.ga_loss(logits, labels).item() == pytest.approx(((s0 + s1) / 2).item())
    assert losses.nll_loss(logits, labels).item() == pytest.approx(-((s0 + s1) / 2).item())
    assert losses.sequence_logprob(logits, labels, "sum")[1].item() == pytest.approx(
        (logp[1, 0, 0] + logp[1, 1, 3]).item()
    )


def test_npo_matches_hand_computation_and_is_bounded():
    logits, labels = _toy()
    ref = torch.tensor([-3.0, -2.0], dtype=torch.float64)
    beta = 0.5
    seq = losses.sequence_logprob(logits, labels, "sum")
    expected = (-2 / beta) * torch.log(torch.sigmoid(-beta * (seq - ref))).mean()
    got = losses.npo_loss(logits, labels, ref, beta)
    assert got.item() == pytest.approx(expected.item())
    assert got.item() >= 0
    # at the reference itself NPO equals (2/beta) log 2
    assert losses.npo_loss(logits, labels, seq.detach(), beta).item() == pytest.approx(2 / beta * math.log(2))
    with pytest.raises(ValueError, match="beta"):
        losses.npo_loss(logits, labels, ref, beta=0.0)


def test_forward_kl_full_vocab_matches_hand_computation():
    student, labels = _toy()
    teacher = torch.randn_like(student)
    ids, logp = losses.topk_teacher(teacher, labels)
    p = torch.softmax(teacher[:, :-1], -1)
    kl_pos = (p * (torch.log_softmax(teacher[:, :-1], -1) - torch.log_softmax(student[:, :-1], -1))).sum(-1)
    s0 = kl_pos[0, 1:4].mean()
    s1 = kl_pos[1, 0:2].mean()
    got = losses.forward_kl(student, labels, ids, logp)
    assert got.item() == pytest.approx(((s0 + s1) / 2).item())
    assert losses.forward_kl(teacher, labels, ids, logp).item() == pytest.approx(0.0, abs=1e-12)


def test_topk_kl_is_a_lower_bound_and_exact_when_teacher_is_concentrated():
    student, labels = _toy(vocab=6)
    teacher = torch.randn_like(student)
    full = losses.forward_kl(student, labels, *losses.topk_teacher(teacher, labels))
    top3 = losses.forward_kl(student, labels, *losses.topk_teacher(teacher, labels, k=3))
    assert 0 <= top3.item() <= full.item() + 1e-12
    sharp = teacher.clone()
    sharp[..., 0] += 50.0  # nearly all teacher mass on token 0
    a = losses.forward_kl(student, labels, *losses.topk_teacher(sharp, labels))
    b = losses.forward_kl(student, labels, *losses.topk_teacher(sharp, labels, k=1))
    assert b.item() == pytest.approx(a.item(), rel=1e-6)


@pytest.mark.parametrize("name", ["ga", "nll", "npo", "kl_full", "kl_topk"])
def test_gradcheck_float64(name):
    logits, labels = _toy(vocab=5)
    logits.requires_grad_(True)
    teacher = torch.randn(2, 5, 5, dtype=torch.float64)
    ref = torch.tensor([-4.0, -1.0], dtype=torch.float64)
    fns = {
        "ga": lambda x: losses.ga_loss(x, labels),
        "nll": lambda x: losses.nll_loss(x, labels),
        "npo": lambda x: losses.npo_loss(x, labels, ref, 0.3),
        "kl_full": lambda x: losses.forward_kl(x, labels, *losses.topk_teacher(teacher, labels)),
        "kl_topk": lambda x: losses.forward_kl(x, labels, *losses.topk_teacher(teacher, labels, k=2)),
    }
    assert torch.autograd.gradcheck(fns[name], (logits,), eps=1e-6, atol=1e-5)


def test_ignored_positions_get_no_gradient():
    logits, labels = _toy()
    logits.requires_grad_(True)
    losses.ga_loss(logits, labels).backward()
    assert torch.all(logits.grad[0, 0] == 0) and torch.all(logits.grad[0, 4] == 0)  # prompt and last position
    assert torch.all(logits.grad[1, 2:] == 0)


def _step(param, loss_fn, lr=0.5):
    loss = loss_fn(param)
    loss.backward()
    with torch.no_grad():
        param -= lr * param.grad
    param.grad = None


def test_one_ga_step_lowers_the_answer_likelihood():
    logits, labels = _toy(dtype=torch.float32)
    logits.requires_grad_(True)
    before = losses.sequence_logprob(logits, labels).detach()
    _step(logits, lambda x: losses.ga_loss(x, labels))
    after = losses.sequence_logprob(logits, labels).detach()
    assert torch.all(after < before)


def test_one_bg_step_lowers_the_kl():
    logits, labels = _toy(dtype=torch.float32)
    logits.requires_grad_(True)
    teacher = losses.topk_teacher(torch.randn_like(logits), labels)
    before = losses.forward_kl(logits, labels, *teacher).item()
    _step(logits, lambda x: losses.forward_kl(x, labels, *teacher))
    assert losses.forward_kl(logits, labels, *teacher).item() < before


@pytest.mark.parametrize("vocab, k, length", [(6, 3, 3), (3, 2, 6)])
def test_topk_kl_matches_a_hand_computed_k_plus_one_bucket_kl(vocab, k, length):
    """k < V: the teacher's top-k tokens, plus one bucket for the rest of its mass against the student's rest.
    Sequence 1 has a single answer position (its mean divides by 1); k is compared with the vocabulary, never with
    the length (k ≥ T − 1 in the first case, T − 1 ≥ V in the second)."""
    student = torch.randn(2, length, vocab, dtype=torch.float64)
    teacher = torch.randn(2, length, vocab, dtype=torch.float64)
    labels = torch.full((2, length), -100)
    labels[0, 1:] = 1
    labels[1, 1] = 2
    ids, logp = losses.topk_teacher(teacher, labels, k=k)
    p, q = torch.softmax(teacher[:, :-1], -1), torch.softmax(student[:, :-1], -1)
    kl = torch.zeros(2, length - 1, dtype=torch.float64)
    for b in range(2):
        for t in range(length - 1):
            top = torch.topk(p[b, t], k).indices
            rest_p, rest_q = 1 - p[b, t, top].sum(), 1 - q[b, t, top].sum()
            kl[b, t] = (p[b, t, top] * (p[b, t, top] / q[b, t, top]).log()).sum() + rest_p * (rest_p / rest_q).log()
    expected = (kl[0].mean() + kl[1, 0:1].mean()) / 2
    assert losses.forward_kl(student, labels, ids, logp).item() == pytest.approx(expected.item(), rel=1e-10)


def test_a_full_vocabulary_teacher_keeps_every_token_in_order():
    teacher, labels = _toy(vocab=5)
    for k in (None, 5, 9):
        ids, logp = losses.topk_teacher(teacher, labels, k=k)
        assert ids.shape == logp.shape == (2, 4, 5)
        assert torch.equal(ids, torch.arange(5).expand(2, 4, 5))  # not sorted by probability: the plain vocabulary


def test_npo_default_beta_is_the_papers():
    logits, labels = _toy()
    ref = torch.tensor([-3.0, -2.0], dtype=torch.float64)
    assert losses.npo_loss(logits, labels, ref).item() == pytest.approx(
        losses.npo_loss(logits, labels, ref, 0.1).item()
    )
    assert losses.npo_loss(logits, labels, ref).item() != pytest.approx(
        losses.npo_loss(logits, labels, ref, 1.1).item()
    )


def test_half_precision_logits_are_scored_in_float32():
    logits, labels = _toy(dtype=torch.float32)
    half = logits.to(torch.bfloat16)
    for loss in (losses.ga_loss, losses.nll_loss):
        assert loss(half, labels).item() == loss(half.float(), labels).item()


def test_a_one_token_answer_has_its_tokens_log_probability_as_mean_and_bad_reductions_are_named():
    logits, _ = _toy()
    labels = torch.tensor([[-100, -100, 2, -100, -100], [-100, 0, 3, -100, -100]])
    logp = torch.log_softmax(logits, -1)
    means = losses.sequence_logprob(logits, labels, "mean")
    assert means[0].item() == pytest.approx(logp[0, 1, 2].item())
    assert means[1].item() == pytest.approx(((logp[1, 0, 0] + logp[1, 1, 3]) / 2).item())
    with pytest.raises(ValueError, match="unknown reduction 'median'"):
        losses.sequence_logprob(logits, labels, "median")
