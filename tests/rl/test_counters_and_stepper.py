"""RunCounters (checkpointed per rank, global totals) and ClippedStepper (clipping inside the optimizer step,
its outcome returned, non-finite steps skipped and counted): the trainer's owned collaborators, alone."""

from __future__ import annotations

import math

import pytest
import torch

from lit_triune.rl.counters import RunCounters, combine_ranks
from lit_triune.rl.optimizer_step import ClippedStepper


def test_counters_restore_each_ranks_own_counts_and_total_over_ranks() -> None:
    counters = RunCounters()
    counters.bump("data_skipped/bad_image", 2)
    counters.bump("nonfinite_steps_skipped")
    state = counters.state_dict()
    assert state["counters_per_rank"] == [{"data_skipped/bad_image": 2, "nonfinite_steps_skipped": 1}]
    rank1 = {"counters": {}, "counters_per_rank": [{"a": 1}, {"a": 5}]}
    restored = RunCounters()
    restored.load_state_dict(rank1, rank=1, world_size=2)
    assert restored.as_dict() == {"a": 5}
    restored.load_state_dict(rank1, rank=0, world_size=3)  # another world size: the saving rank's counts
    assert restored.as_dict() == {}
    totals = combine_ranks([{"data_skipped/x": 1, "nonfinite_steps_skipped": 2}, {"data_skipped/y": 3,
                                                                                  "nonfinite_steps_skipped": 2}])
    assert totals == {"data_skipped/x": 1, "data_skipped/y": 3, "nonfinite_steps_skipped": 2,  # same on all ranks
                      "data_skipped/total": 4}


class HookedSGD:
    """A plain SGD whose step() calls the stepper's clip first, as Lightning calls the module's
    on_before_optimizer_step inside LightningOptimizer.step()."""

    def __init__(self, params, stepper: ClippedStepper) -> None:
        self.inner = torch.optim.SGD(params, lr=1.0)
        self.param_groups = self.inner.param_groups
        self.stepper = stepper

    def step(self) -> None:
        self.stepper.clip(self)
        self.inner.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)


@pytest.mark.parametrize(("grad", "finite", "stepped", "moved"), [
    (3.0, True, True, 1.0),  # norm 3 clipped to 1: the parameter moves by exactly 1
    (math.inf, True, False, 0.0),  # non-finite norm: nothing moves, counted
    (3.0, False, False, 0.0),  # non-finite loss reported by the caller: gradients dropped, counted
])
def test_stepper_returns_the_outcome_of_its_clipping(grad, finite, stepped, moved) -> None:
    counters = RunCounters()
    stepper = ClippedStepper(max_norm=1.0, counters=counters)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = HookedSGD([p], stepper)
    p.grad = torch.full((1,), grad)
    outcome = stepper.step(opt, finite)
    assert outcome.stepped is stepped
    assert float(-p.detach()) == pytest.approx(moved)
    assert counters.get("nonfinite_steps_skipped") == (0 if stepped else 1)
    if finite:
        assert outcome.grad_norm == grad  # the norm before clipping
    else:
        assert math.isnan(outcome.grad_norm)  # no gradient was left to clip
    assert p.grad is None  # zeroed after every step
