"""Run counters: events a long run must not lose (data skips, non-finite steps, refills, masked samples, ...).

One owner for them: every collaborator of the trainer that counts something is given the run's `RunCounters`
and calls `bump`; the module checkpoints it (`state_dict` / `load_state_dict`) and logs the global totals
(`combine_ranks`, gathered with the step's metrics in one collective) on every training step of every stage.
"""

from __future__ import annotations

from typing import Any

from lit_triune.rl.distributed import gather_objects

SAME_ON_ALL_RANKS = frozenset({"nonfinite_steps_skipped"})
"""Counters of events all ranks agree on (an optimizer step is skipped on every rank alike): their global
figure is the largest rank's, not the sum."""


class RunCounters:
    """Per-rank counts of named events; checkpointed per rank, so a resumed run keeps counting."""

    def __init__(self) -> None:
        self._counts: dict[str, float] = {}

    def bump(self, key: str, by: float = 1) -> None:
        self._counts[key] = self._counts.get(key, 0) + by

    def get(self, key: str, default: float = 0) -> float:
        return self._counts.get(key, default)

    def __getitem__(self, key: str) -> float:
        return self._counts[key]

    def as_dict(self) -> dict[str, float]:
        return dict(self._counts)

    def state_dict(self) -> dict[str, Any]:
        """This rank's counts and every rank's (a collective: call on every rank), so rank 0's checkpoint file
        restores each rank's own counts."""
        return {"counters": dict(self._counts), "counters_per_rank": gather_objects(dict(self._counts))}

    def load_state_dict(self, state: dict[str, Any], rank: int = 0, world_size: int = 1) -> None:
        per_rank = state.get("counters_per_rank")
        if per_rank and len(per_rank) == world_size:
            self._counts = dict(per_rank[rank])
        else:
            self._counts = dict(state.get("counters", {}))


def combine_ranks(parts: list[dict[str, float]]) -> dict[str, float]:
    """The ranks' counts (in rank order) as global figures: sums, except `SAME_ON_ALL_RANKS` (the largest);
    `data_skipped/total` sums the skip reasons."""
    out: dict[str, float] = {}
    for key in sorted({k for part in parts for k in part}):
        values = [float(part.get(key, 0.0)) for part in parts]
        out[key] = max(values) if key in SAME_ON_ALL_RANKS else sum(values)
    out["data_skipped/total"] = sum(v for k, v in out.items() if k.startswith("data_skipped/"))
    return out
