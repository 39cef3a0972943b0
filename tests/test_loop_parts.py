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


def _examples(n_forget: int, n_retain: int, seed: int = 0):
    """The index sampler of a run, without encoding anything (its draws depend only on the pool sizes and the seed)."""
    from pubg_lib.unlearn import _Examples

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


def test_each_process_trains_on_its_slice_and_all_stop_when_one_diverged(smoke_construction):
    from pubg_lib.reference import build_unlearning_data
    from pubg_lib.unlearn import UnlearnConfig, UnlearningDiverged, UnlearningLoop

    con = smoke_construction
    data = build_unlearning_data(con.lvlm, con.dataset, con.split(2), model_id=str(con.model_dir), progress=False)
    cfg = UnlearnConfig(method="GA", steps=2, forget_batch=2, retain_batch=2, seed=0)
    view = _TwoProcesses(other=1.0)  # the other process's loss is finite: a normal step
    loop = UnlearningLoop(con.lvlm, con.dataset, data, cfg, accelerator=view.accelerator)
    assert loop.shard([0, 1, 2, 3, 4]) == [1, 3]  # process 1 of 2 takes examples 1, 3, ...
    assert math.isfinite(loop.step(0)["total"]) and view.reduced
    view = _TwoProcesses(other=0.0)  # the other process's loss was not finite: this one stops too
    loop = UnlearningLoop(con.lvlm, con.dataset, data, cfg, accelerator=view.accelerator)
    with pytest.raises(UnlearningDiverged):
        loop.step(0)
