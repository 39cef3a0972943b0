"""The descent directions notebook 03 draws are the negative gradients of the library's losses, and the toy GA
rollout behaves as the text says (the name only loses mass; the likeliest other tokens gain the most)."""

import numpy as np
import pytest
import torch

from pubg_lib import gradients, losses


def _one_position(p_student, p_teacher, label):
    """A batch of one sequence whose only answer token is `label`, with the given distributions at its position."""
    logits = torch.tensor(np.log(p_student), dtype=torch.float64)[None, None].repeat(1, 2, 1).requires_grad_(True)
    labels = torch.tensor([[-100, label]])
    teacher_logp = torch.tensor(np.log(p_teacher), dtype=torch.float64)[None, None].repeat(1, 1, 1)
    teacher_ids = torch.arange(len(p_teacher))[None, None]
    return logits, labels, (teacher_ids, teacher_logp)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_descent_directions_are_the_negative_gradients_of_the_losses(seed):
    rng = np.random.default_rng(seed)
    p_s, p_t = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    label = int(rng.integers(7))
    logits, labels, teacher = _one_position(p_s, p_t, label)
    g_ga = torch.autograd.grad(losses.ga_loss(logits, labels), logits)[0][0, 0].numpy()
    g_bg = torch.autograd.grad(losses.forward_kl(logits, labels, *teacher), logits)[0][0, 0].numpy()
    push = gradients.descent_directions(p_s, p_t, label)
    np.testing.assert_allclose(push["ga"], -g_ga, atol=1e-12)
    np.testing.assert_allclose(push["bg"], -g_bg, atol=1e-12)
    assert push["ga"][label] < 0 and (np.delete(push["ga"], label) > 0).all()  # GA: the label down, the rest up


def test_the_ga_rollout_moves_mass_from_the_label_to_the_likeliest_tokens():
    p = np.array([0.9, 0.05, 0.03, 0.01, 0.005, 0.005])
    rollout = gradients.ga_rollout(np.log(p), label=0, learning_rate=1.0, steps=200)
    assert rollout.shape == (201, 6)
    np.testing.assert_allclose(rollout[0], p)
    np.testing.assert_allclose(rollout.sum(1), 1)
    assert (np.diff(rollout[:, 0]) < 0).all() and rollout[-1, 0] < 0.05
    # the first step is the formula: logits move by η (p − 1_y)
    z1 = np.log(p) + 1.0 * (p - np.eye(6)[0])
    np.testing.assert_allclose(rollout[1], np.exp(z1) / np.exp(z1).sum())
    # rich get richer: the likeliest runner-up gains more than its share of the other tokens' mass
    assert rollout[-1, 1] / rollout[-1, 2] > p[1] / p[2]
    start, end = gradients.runner_up_mass(rollout, label=0, k=2)
    assert start == pytest.approx(0.08) and end > 0.9  # the two runners-up take (nearly) everything
    assert gradients.runner_up_mass(rollout[:1], label=0, k=2) == (start, start)
    half = gradients.first_step_below(rollout[:, 0], 0.5)
    assert rollout[half, 0] < 0.5 <= rollout[half - 1, 0]
    assert gradients.first_step_below(rollout[:, 0], 0.0) is None


def test_tokens_to_show_start_with_the_label_and_repeat_none():
    p_s = np.array([0.1, 0.6, 0.2, 0.1])
    p_t = np.array([0.5, 0.1, 0.1, 0.3])
    shown = gradients.tokens_to_show(p_s, p_t, label=2, k=2)
    assert shown == [2, 1, 0, 3]
