"""The shard stream: split by global rank and worker, mixed by weight, resumable exactly.

Order is a pure function of (seed, epoch, slot): each source's shards are permuted per epoch and
samples permuted within a shard, then dealt to the `world_size * num_workers` slots (by shard
when there are enough shards, by sample otherwise). A worker's position is a small cursor
(per-source epoch and offset, mixing draws) that travels with every batch it yields, so the
main process can checkpoint exactly what was consumed, including samples skipped as bad.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from lit_triune.data.batch import PromptBatch, PromptBuilder, SkipSample, collate, skip_reason
from lit_triune.data.schema import SampleError
from lit_triune.data.shard_index import ShardReader
from lit_triune.data.shards import ShardError, decode_raw


@dataclass(frozen=True)
class Source:
    """One data source: its shards, their sample counts (from the manifest) and mixing weight."""

    name: str
    shards: tuple[str, ...]
    counts: tuple[int, ...]
    weight: float = 1.0

    def __post_init__(self) -> None:
        if len(self.shards) != len(self.counts):
            raise ValueError(f"source {self.name!r}: {len(self.shards)} shards but {len(self.counts)} counts")
        if not (self.weight >= 0):
            raise ValueError(f"source {self.name!r}: weight must be >= 0, got {self.weight}")


def plan(source: Source, epoch: int, slot: int, slots: int, seed: int, shuffle: bool) -> Iterator[tuple[int, int]]:
    """(shard index, sample index within the shard) for one slot's share of one epoch of a source."""
    order = list(range(len(source.shards)))
    if shuffle:
        random.Random(f"{seed}/{source.name}/{epoch}/shards").shuffle(order)

    def samples(s: int) -> list[int]:
        idx = list(range(source.counts[s]))
        if shuffle:
            random.Random(f"{seed}/{source.name}/{epoch}/{s}").shuffle(idx)
        return idx

    if len(order) >= slots:  # whole shards per slot: each shard is read by one slot only
        for s in order[slot::slots]:
            for j in samples(s):
                yield s, j
        return
    g = 0  # fewer shards than slots: deal samples round-robin over the epoch's sequence
    for s in order:
        for j in samples(s):
            if g % slots == slot:
                yield s, j
            g += 1


class DataSourceError(RuntimeError):
    """A training source whose samples are unusable beyond the configured rate (`max_bad_fraction`)."""


@dataclass
class _Health:
    """One source's draws and skips in the current window of `bad_fraction_window` draws (this worker's share)."""

    drawn: int = 0
    bad: int = 0
    reasons: Counter = field(default_factory=Counter)
    shards: dict[str, str] = field(default_factory=dict)  # shard -> its first problem

    def check(self, name: str, limit: float | None, window: int, where: str) -> None:
        if limit is not None and self.bad > limit * window:  # over the limit whatever the rest of the window holds
            shards = "; ".join(f"{s}: {why}" for s, why in list(self.shards.items())[:5])
            raise DataSourceError(
                f"data source {name!r} is unusable: {self.bad} of the {self.drawn} samples drawn from it ({where}) "
                f"were skipped, over the limit of {limit:.0%} of {window} draws (max_bad_fraction / "
                f"bad_fraction_window); reasons {dict(self.reasons)}; shards: {shards}")
        if self.drawn >= window:  # a new window: a source that goes bad later is caught too
            self.drawn, self.bad, self.reasons, self.shards = 0, 0, Counter(), {}


class _Reader:
    """A slot's position in one source; loops over epochs when `infinite`."""

    def __init__(self, stream: ShardStream, source: Source, slot: int, slots: int, epoch: int, offset: int) -> None:
        self.stream, self.source, self.slot, self.slots = stream, source, slot, slots
        self.epoch, self.offset = epoch, offset
        self._it = islice(self._plan(), offset, None)
        self._fresh_empty = 0

    def _plan(self) -> Iterator[tuple[int, int]]:
        return plan(self.source, self.epoch, self.slot, self.slots, self.stream.seed, self.stream.train)

    def next(self) -> tuple[str, int] | None:
        while True:
            nxt = next(self._it, None)
            if nxt is not None:
                self.offset += 1
                self._fresh_empty = 0
                return self.source.shards[nxt[0]], nxt[1]
            if not self.stream.train or self._fresh_empty >= 1:
                return None  # finite pass done, or this slot gets nothing from this source
            self._fresh_empty += self.offset == 0
            self.epoch, self.offset = self.epoch + 1, 0
            self._it = self._plan()


class ShardStream(IterableDataset):
    """Yields `PromptBatch`es of `batch_size` built in the worker (use `DataLoader(batch_size=None)`).

    Args:
        train: True -> infinite weighted mix, reshuffled each epoch; False -> one pass over each
            source in order, unshuffled (validation).
        resume: a state from `StreamTracker.state()`; each worker starts at its saved cursor.
        max_bad_fraction: stop (`DataSourceError`, naming the source, its bad shards and the reasons) when
            more than this fraction of a source's draws in a window are skipped; None: never.
        bad_fraction_window: the window, in draws of one source by one worker (the first 200 by default).
    """

    def __init__(self, sources: list[Source], builder: PromptBuilder, *, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, train: bool = True, resume: dict[str, Any] | None = None,
                 max_bad_fraction: float | None = 0.2, bad_fraction_window: int = 200) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if not sources:
            raise ValueError("ShardStream needs at least one source")
        if train and not any(s.weight > 0 for s in sources):
            raise ValueError(f"at least one source needs weight > 0, got {[(s.name, s.weight) for s in sources]}")
        self.sources, self.builder, self.batch_size, self.seed = sources, builder, batch_size, seed
        self.rank, self.world_size, self.train, self.resume = rank, world_size, train, resume
        if max_bad_fraction is not None and not 0 <= max_bad_fraction < 1:
            raise ValueError(f"max_bad_fraction must be in [0, 1) or None, got {max_bad_fraction!r}")
        if bad_fraction_window < 1:
            raise ValueError(f"bad_fraction_window must be >= 1, got {bad_fraction_window!r}")
        self.max_bad_fraction, self.bad_fraction_window = max_bad_fraction, bad_fraction_window
        self.max_consecutive_skips = max(1000, 50 * batch_size)

    def __iter__(self) -> Iterator[PromptBatch]:
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        rotation, cursor = 0, None
        if self.resume is not None:
            if self.resume["num_workers"] != workers or self.resume["world_size"] != self.world_size:
                raise ValueError(
                    f"cannot resume a stream saved with num_workers={self.resume['num_workers']}, "
                    f"world_size={self.resume['world_size']} on num_workers={workers}, world_size={self.world_size}")
            rotation = self.resume["rotation"]
        logical = (wid + rotation) % workers
        if self.resume is not None:
            cursor = self.resume["cursors"].get(str(logical))
        slot, slots = self.rank * workers + logical, self.world_size * workers
        yield from self._batches(logical, slot, slots, cursor or {})

    def _batches(self, logical: int, slot: int, slots: int, cursor: dict[str, Any]) -> Iterator[PromptBatch]:
        positions = cursor.get("sources", {})
        readers = {s.name: _Reader(self, s, slot, slots, *positions.get(s.name, (0, 0))) for s in self.sources}
        done = set(cursor.get("done", []))
        draws = int(cursor.get("draws", 0))
        shards = ShardReader()  # per-shard member offsets: a draw seeks to its sample (data/shard_index.py)
        items: list[dict[str, Any]] = []
        skips: Counter = Counter()
        order = iter(self.sources)
        current = next(order)
        since_yield = 0  # consecutive skips: a wholly broken source must fail loudly, not spin
        health = {s.name: _Health() for s in self.sources}
        noted: set[str] = set()  # skip reasons this worker has described to the main process
        notes: dict[str, str] = {}  # reason -> first example, sent with the next batch (TrackingLoader warns)
        where = f"rank {self.rank}, worker {logical}"

        def state() -> dict[str, Any]:
            return {"worker": logical, "rank": self.rank, "draws": draws, "done": sorted(done),
                    "sources": {n: [r.epoch, r.offset] for n, r in readers.items()}}

        def skip(source: str, shard: str, reason: str, detail: str) -> None:
            skips[reason] += 1
            h = health[source]
            h.bad += 1
            h.reasons[reason] += 1
            h.shards.setdefault(shard, detail)
            if reason not in noted:
                noted.add(reason)
                notes[reason] = f"source {source!r}: {detail}"

        while True:
            if self.train:
                active = [s for s in self.sources if s.weight > 0 and s.name not in done]
                if not active:
                    break
                u = random.Random(f"{self.seed}/mix/{slot}/{draws}").random() * sum(s.weight for s in active)
                draws += 1
                src = next((s for s in active if (u := u - s.weight) < 0), active[-1])
            else:
                src = current
            nxt = readers[src.name].next()
            if nxt is None:
                done.add(src.name)
                if not self.train:
                    current = next(order, None)
                    if current is None:
                        break
                continue
            shard, j = nxt
            since_yield += 1
            if since_yield > self.max_consecutive_skips:
                raise RuntimeError(
                    f"{since_yield} samples in a row were unusable (rank {self.rank}, worker {logical}); "
                    f"skips so far: {dict(skips)}; last shard {shard!r}: {shards.error(shard) or 'readable'}")
            h = health[src.name]
            h.drawn += 1
            try:
                raw, why = shards.get(shard, j), None
            except ShardError as err:  # the file changed after it was indexed
                raw, why = None, str(err)
            if raw is None:
                why = why or shards.error(shard) or f"{shard}: sample {j} is missing (manifest count too high)"
                skip(src.name, shard, "bad_shard", why)
            else:
                try:
                    items.append(self.builder.build(decode_raw(raw, shard)))
                except SampleError as err:
                    skip(src.name, shard, skip_reason(err), str(err))
                except SkipSample as err:
                    skip(src.name, shard, err.reason, f"shard {shard!r} key {raw[0]!r}: {err.detail or err.reason}")
                else:
                    since_yield = 0
            if self.train:
                h.check(src.name, self.max_bad_fraction, self.bad_fraction_window, where)
            if len(items) == self.batch_size:
                yield collate(items, skips, self._noted(state(), notes))
                items, skips, notes = [], Counter(), {}
        if items or skips:  # an empty batch only carries the last skip counts out of the worker
            yield collate(items, skips, self._noted(state(), notes))

    @staticmethod
    def _noted(cursor: dict[str, Any], notes: dict[str, str]) -> dict[str, Any]:
        """The cursor, carrying the first example of each new skip reason (TrackingLoader takes it off)."""
        return {**cursor, "notes": dict(notes)} if notes else cursor
