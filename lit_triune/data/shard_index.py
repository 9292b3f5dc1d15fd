"""Random access to the samples of plain tar shards: an index of where each member's bytes lie.

The training stream draws one sample at a time from a weighted mix of sources, so consecutive draws
usually come from different shards. Reading a sample by iterating its shard from the start costs a
pass over every header before it (a 256-sample synthetic shard: ~30 ms a draw, most of a data worker's
core at the CPU default's rate); keeping whole shards in memory costs their size times the number of
sources. An index holds, per sample, each member's offset and size (a few hundred bytes a sample), so
a draw is one `open` and a seek per member, and an index is built once per shard while it stays in the
reader's cache.

Same samples as `lit_triune.data.shards.iter_shard`, in the same order, with the same rules: regular
files only, WebDataset's metadata names skipped, the key split from the extension at the first dot of
the base name, extensions lower-cased, members of one key consecutive; a tar that stops being readable
part-way keeps the samples before the one being read, and the error names the file. A shard that is not
a plain, seekable tar (e.g. gzip-compressed) is read whole into memory, as before.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections import OrderedDict
from dataclasses import dataclass

from lit_triune.data.shards import RawSample, ShardError, check_end, iter_shard

_META = re.compile(r"__[^/]*__($|/)")  # WebDataset's skip_meta: `__key__`-style names carry no sample data
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # WebDataset's base_plus_ext: key, then every extension

Members = dict[str, tuple[int, int]]  # extension -> (offset of the data in the file, size in bytes)


@dataclass(frozen=True)
class ShardIndex:
    """Where each readable sample of one shard lies; `error` says why reading stopped early, if it did."""

    path: str
    entries: tuple[tuple[str, Members], ...]  # (key, members) in tar order
    error: str | None = None
    whole: tuple[RawSample, ...] | None = None  # the samples themselves, for a shard that cannot be seeked

    def __len__(self) -> int:
        return len(self.whole) if self.whole is not None else len(self.entries)

    def read(self, j: int) -> RawSample:
        """Sample `j` (0-based, tar order) as (key, {extension: bytes})."""
        if self.whole is not None:
            return self.whole[j]
        key, members = self.entries[j]
        out: dict[str, bytes] = {}
        with open(self.path, "rb") as f:
            for ext, (offset, size) in members.items():
                f.seek(offset)
                data = f.read(size)
                if len(data) != size:  # the file changed under us after indexing
                    raise ShardError(f"{self.path}: member {key}.{ext} ends early ({len(data)} of {size} bytes)")
                out[ext] = data
        return key, out


def index_shard(path: str) -> ShardIndex:
    """Scan the headers of one shard (data is skipped by seeking, not read)."""
    try:
        tar = tarfile.open(path, "r:")
    except (tarfile.ReadError, OSError):
        return _read_whole(path)  # compressed, or unreadable from the start: the streaming reader says which
    entries: list[tuple[str, Members]] = []
    current: tuple[str, Members] | None = None
    size = os.path.getsize(path)
    try:
        with tar:
            for info in tar:
                name = info.name
                if not info.isreg() or _META.match(name):
                    continue
                match = _KEY_EXT.match(name)
                if match is None:
                    continue
                key, ext = match.group(1), match.group(2).lower()
                if info.offset_data + info.size > size:
                    raise ShardError(f"{path}: member {name!r} is cut short (the file ends inside its data)")
                if current is None or key != current[0]:
                    if current is not None:
                        entries.append(current)
                    current = (key, {})
                if ext in current[1]:
                    raise ShardError(f"{path}: duplicate member {name!r}")
                current[1][ext] = (info.offset_data, info.size)
        if current is not None:
            entries.append(current)
            current = None
        check_end(path, entries[-1][0] if entries else None)
    except Exception as err:  # noqa: BLE001 - tarfile and IO errors alike: keep the readable prefix, name the file
        last = f" after key {entries[-1][0]!r}" if entries else ""
        error = str(err) if isinstance(err, ShardError) else f"{path}: unreadable{last}: {type(err).__name__}: {err}"
        return ShardIndex(path, tuple(entries), error)
    return ShardIndex(path, tuple(entries))


def _read_whole(path: str) -> ShardIndex:
    samples: list[RawSample] = []
    try:
        for raw in iter_shard(path):
            samples.append(raw)
    except ShardError as err:
        return ShardIndex(path, (), str(err), tuple(samples))
    return ShardIndex(path, (), None, tuple(samples))


class ShardReader:
    """Sample `j` of any shard, keeping the indexes of the `capacity` shards used most recently."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._indexes: OrderedDict[str, ShardIndex] = OrderedDict()

    def index(self, path: str) -> ShardIndex:
        idx = self._indexes.pop(path, None)
        if idx is None:
            idx = index_shard(path)
        self._indexes[path] = idx
        while len(self._indexes) > self.capacity:
            self._indexes.popitem(last=False)
        return idx

    def get(self, path: str, j: int) -> RawSample | None:
        """Sample `j`, or None when the shard holds fewer readable samples (see `error(path)`)."""
        idx = self.index(path)
        return idx.read(j) if j < len(idx) else None

    def error(self, path: str) -> str | None:
        return self.index(path).error
