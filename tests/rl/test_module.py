"""TriuneModule's own checks (the fits themselves are tested through rl_fit.py / rl_cli.py elsewhere)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
import torch.distributed as dist
from rl_fit import tiny_module
from torch import nn


@pytest.fixture
def one_rank_group():
    """A real gloo process group of one rank, so DistributedDataParallel can wrap a module. An in-process
    vLLM engine of an earlier test (tests/rl/test_export.py) leaves its own one-rank group behind: used as is."""
    if dist.is_initialized():
        assert dist.get_world_size() == 1
        yield
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize(("warm_start_freeze", "find_unused", "fails"), [
    ("none", False, True),  # the warm-start trains the ViT, RL does not: DDP must detect unused parameters
    ("none", True, False),
    ("vision", False, False),  # both stages train the same parameters
])
def test_fit_start_refuses_ddp_that_cannot_handle_the_stages(one_rank_group, warm_start_freeze, find_unused, fails):
    module = tiny_module(warm_start_steps=2, warm_start_freeze=warm_start_freeze, freeze="vision")
    wrapped = nn.parallel.DistributedDataParallel(nn.Linear(2, 2), find_unused_parameters=find_unused)
    module.trainer = SimpleNamespace(strategy=SimpleNamespace(model=wrapped))
    if fails:
        with pytest.raises(ValueError, match="ddp_find_unused_parameters_true"):
            module._check_ddp_detects_unused_parameters()
    else:
        module._check_ddp_detects_unused_parameters()
    module.trainer = SimpleNamespace(strategy=SimpleNamespace(model=nn.Linear(2, 2)))  # no DDP: nothing to check
    module._check_ddp_detects_unused_parameters()


def test_rollout_seed_changes_the_sampling_draws_only() -> None:
    """`rollout_seed` re-seeds rollout sampling; `seed` (data order, linked to data.seed) stays the run's."""
    from lit_triune.rl.rollout_step import RolloutContext

    ctx = RolloutContext(engine=None, policy=None, processor=None, device=None, step=301, rank=0, iou_threshold=0.85)
    draws = {}
    for name, kwargs in (("default", {}), ("same", {"rollout_seed": 3}), ("other", {"rollout_seed": 1000})):
        module = tiny_module(seed=3, **kwargs)
        assert module.hparams.seed == 3  # what the CLI links to data.seed
        draws[name] = module.runner._sampling(ctx, greedy=False).seed
    assert draws["default"] == draws["same"] != draws["other"]
