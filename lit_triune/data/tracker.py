"""Main-process bookkeeping for exact resume: which batch each worker yielded, and where it stood.

A DataLoader over an IterableDataset yields round-robin from its workers, and Lightning fetches
one batch ahead, so "where the data stands" is the cursor of the last batch each worker yielded
*and the training loop consumed*; the tracker keeps a short history to answer that.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader

from lit_triune.data.batch import PromptBatch

_log = logging.getLogger("lit_triune.data")


class StreamTracker:
    """Records (index, worker, cursor) per yielded batch; `state(consumed)` is what to resume from."""

    def __init__(self, num_workers: int, world_size: int, resume: dict[str, Any] | None = None) -> None:
        self.workers = max(1, num_workers)
        self.world_size = world_size
        self.base = resume or {"num_workers": self.workers, "world_size": world_size, "rotation": 0, "cursors": {}}
        self.yielded = 0
        self.history: deque[tuple[int, int, dict[str, Any]]] = deque(maxlen=8 * self.workers + 16)

    def record(self, batch: PromptBatch) -> None:
        if batch.cursor is not None:
            self.history.append((self.yielded, int(batch.cursor["worker"]), batch.cursor))
        self.yielded += 1

    def state(self, consumed: int | None = None) -> dict[str, Any]:
        """Resume state after the first `consumed` batches yielded (default: all of them)."""
        consumed = self.yielded if consumed is None else min(consumed, self.yielded)
        cursors = dict(self.base["cursors"])
        last_worker = None
        for index, worker, cursor in self.history:
            if index < consumed:
                cursors[str(worker)] = cursor
                last_worker = worker
        if consumed > 0 and self.history and self.history[0][0] > consumed - 1:
            raise RuntimeError(f"resume history no longer holds batch {consumed - 1}; the loader ran too far ahead")
        rotation = self.base["rotation"] if last_worker is None else (last_worker + 1) % self.workers
        return {"num_workers": self.workers, "world_size": self.world_size, "rotation": rotation, "cursors": cursors}


class TrackingLoader(DataLoader):
    """A DataLoader whose iterator records each batch in a tracker and hides the cursor from consumers.

    Batches with no prompts only carry skip counts out of a worker: they are merged into the next
    batch instead of reaching the training step. The first time a skip reason appears, a warning
    says where (source, shard, key, why); later ones are only counted (`data_skipped/<reason>`).
    """

    def __init__(self, *args: Any, tracker: StreamTracker, on_iter: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker, self.on_iter = tracker, on_iter
        self.pending_skips: dict[str, int] = {}
        self.warned: set[str] = set()

    def __iter__(self) -> Iterator[PromptBatch]:  # type: ignore[override]
        if self.on_iter is not None:
            self.on_iter()
        for batch in super().__iter__():
            notes = batch.cursor.pop("notes", None) if batch.cursor is not None else None
            for reason, example in (notes or {}).items():
                if reason not in self.warned:
                    self.warned.add(reason)
                    _log.warning("data: skipped a sample (%s), %s; later %r skips are counted in data_skipped/%s",
                                 reason, example, reason, reason)
            self.tracker.record(batch)
            batch.cursor = None
            for reason, n in self.pending_skips.items():
                batch.skips[reason] = batch.skips.get(reason, 0) + n
            if len(batch) == 0:
                self.pending_skips = dict(batch.skips)
                continue
            self.pending_skips = {}
            yield batch
