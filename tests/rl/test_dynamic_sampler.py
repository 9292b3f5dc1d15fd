"""DynamicSampler alone (one process): keeps informative groups across refills, updates on at most a batch of
them, counts refills and updates without signal. The DDP agreement is tested in test_dynamic_sampling.py."""

from __future__ import annotations

import torch

from lit_triune.rl.counters import RunCounters
from lit_triune.rl.dynamic_sampling import DynamicSampler
from lit_triune.rl.rollout_step import ScoredRollout


def _rollout(tag: str, groups: int, g: int = 2) -> ScoredRollout:
    n = groups * g
    return ScoredRollout(group_size=g, prompts=[f"{tag}{i}" for i in range(groups)], images=[None] * groups,
                         image_sizes=[(1, 1)] * groups, reward_models=[{}] * groups, data_sources=["s"] * groups,
                         completion_ids=[[1]] * n, texts=[""] * n, truncated=torch.zeros(n, dtype=torch.bool),
                         results=[{}] * n)


def test_refills_until_a_batch_of_informative_groups_then_updates_on_it() -> None:
    counters = RunCounters()
    sampler = DynamicSampler(max_refill_batches=3, counters=counters)
    first = sampler.offer(_rollout("a", 3), torch.tensor([True, False, False]), target=3)
    assert first.batch is None and sampler.refills == 1
    second = sampler.offer(_rollout("b", 3), torch.tensor([True, True, True]), target=3)
    assert second.batch is not None and second.padding_groups == 0
    assert second.batch.prompts == ["a0", "b0", "b1"]  # pending first, then at most `target` groups
    assert sampler.refills == 0 and counters.get("dynamic_sampling/refills") == 1


def test_no_signal_after_the_last_refill_skips_the_update_and_counts_it() -> None:
    counters = RunCounters()
    sampler = DynamicSampler(max_refill_batches=1, counters=counters)
    none = torch.tensor([False, False])
    assert sampler.offer(_rollout("a", 2), none, target=2).batch is None  # refill
    assert sampler.offer(_rollout("b", 2), none, target=2).batch is None  # out of refills, nothing to train on
    assert counters.get("dynamic_sampling/updates_without_signal") == 1
    partial = sampler.offer(_rollout("c", 2), torch.tensor([True, False]), target=2)
    assert partial.batch is None  # a refill again: the budget is per update
    last = sampler.offer(_rollout("d", 2), none, target=2)
    assert last.batch.prompts == ["c0"]  # out of refills: update on what there is
