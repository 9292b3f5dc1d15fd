"""DAPO's dynamic sampling: keep the groups whose accuracy varies, refill from further batches, then update.

Decided alike on every rank (under DDP every backward is a collective, so all ranks must update or refill
together and run the same micro-batches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lit_triune.rl.counters import RunCounters
from lit_triune.rl.distributed import max_over_ranks, on_all_ranks
from lit_triune.rl.rollout_step import ScoredRollout


@dataclass(frozen=True)
class SamplerDecision:
    batch: ScoredRollout | None  # what to update on; None: refill (draw another batch) or no signal anywhere
    padding_groups: int = 0  # trailing groups of `batch` that only pad the micro-batches (no loss)


class DynamicSampler:
    """Collects informative groups over up to `max_refill_batches` extra rollouts per update."""

    def __init__(self, max_refill_batches: int, counters: RunCounters) -> None:
        self.max_refill_batches = max_refill_batches
        self.counters = counters
        self._pending: list[ScoredRollout] = []
        self.refills = 0  # refills since the last update: the same on every rank; salts the next rollout's seed

    def offer(self, scored: ScoredRollout, informative: torch.Tensor, target: int,
              device: torch.device | str = "cpu") -> SamplerDecision:
        """Keeps this rollout's `informative` groups ([B] bool). Refills while *any* rank holds fewer than
        `target` of them and refills remain (one all-reduce). At update time each rank takes up to `target` of
        its groups; a rank short of the most any rank has pads with groups of its latest rollout, whose rows
        the update must mask (`padding_groups`), so every rank runs the same micro-batches. If no rank has
        any, all skip and count it."""
        self._pending.append(scored.select_groups(informative.nonzero().flatten().tolist()))
        have = sum(p.num_groups for p in self._pending)
        full = on_all_ranks(have >= target, device)
        if not full and self.refills < self.max_refill_batches:
            self.refills += 1
            self.counters.bump("dynamic_sampling/refills")
            return SamplerDecision(None)
        merged = ScoredRollout.concat(self._pending)
        merged = merged.select_groups(list(range(min(target, merged.num_groups))))
        self._pending, self.refills = [], 0
        most = max_over_ranks(merged.num_groups, device)
        if most == 0:
            self.counters.bump("dynamic_sampling/updates_without_signal")
            return SamplerDecision(None)
        padding = most - merged.num_groups
        if padding:
            self.counters.bump("dynamic_sampling/padding_groups")
            pad = scored.select_groups([i % scored.num_groups for i in range(padding)])
            merged = pad if merged.num_groups == 0 else ScoredRollout.concat([merged, pad])
        return SamplerDecision(merged, padding)
