"""The verifier worker runs full garbage collections between tasks, not inside a completion's score."""

from __future__ import annotations

import gc

from lit_triune.rewards import worker


class _Conn:
    def __init__(self, waiting: bool) -> None:
        self.waiting = waiting

    def poll(self) -> bool:
        return self.waiting


def test_full_collection_runs_when_due_and_idle_or_overdue(monkeypatch):
    counts = {"n": 0}
    monkeypatch.setattr(gc, "collect", lambda *a: counts.__setitem__("n", counts["n"] + 1) or 0)
    for due, waiting, collects in [(0, False, 0), (worker.FULL_GC_DUE, False, 1), (worker.FULL_GC_DUE, True, 0),
                                   (worker.FULL_GC_OVERDUE, True, 1)]:  # fmt: skip
        monkeypatch.setattr(gc, "get_count", lambda due=due: (0, 0, due))
        counts["n"] = 0
        worker._full_collection_between_tasks(_Conn(waiting))
        assert counts["n"] == collects, (due, waiting)
