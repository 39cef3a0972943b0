"""The pure parts of the unlearning loop on crafted inputs: where the cached teacher rows land in a batch, and when a
run's dynamics say it collapsed."""

import math

import pandas as pd
import pytest
import torch

from pubg_lib.reference import TeacherCache
from pubg_lib.unlearn import COLLAPSE_FORGET_MARGIN, COLLAPSE_RETAIN_DROP, _teacher_batch, collapse_diagnostics

IGNORE = -100


def _teacher(lengths, k=3):
    ids = [torch.arange(n * k).reshape(n, k) % 7 for n in lengths]
    logps = [torch.log_softmax(torch.randn(n, k), -1) for n in lengths]
    return TeacherCache(ids, logps, torch.zeros(len(lengths)))


def test_teacher_rows_land_on_the_answer_positions_and_the_rest_is_a_uniform_placeholder():
    teacher = _teacher([2, 3])
    shifted = torch.tensor([[IGNORE, 1, 2, 3], [IGNORE, 5, 6, IGNORE]])
    ids, logp = _teacher_batch(teacher, [1, 0], shifted)  # batch row 0 holds cached example 1
    assert ids.shape == logp.shape == (2, 4, 3)
    assert torch.equal(ids[0, 1:4], teacher.ids[1]) and torch.equal(ids[1, 1:3], teacher.ids[0])
    assert torch.equal(logp[0, 1:4], teacher.logprobs[1])
    # outside the answer: a valid (uniform) distribution, so that nothing non-finite can reach the loss
    assert torch.allclose(logp[0, 0].exp(), torch.full((3,), 1 / 3)) and torch.allclose(
        logp[1, 3].logsumexp(-1), torch.zeros(())
    )
    one_ids, _ = _teacher_batch(teacher, [0], shifted[1:, :3])  # a single example works too
    assert one_ids.shape == (1, 3, 3)


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
