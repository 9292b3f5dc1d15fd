"""Training-stream reads on a weighted mix of sources: an index of member offsets vs re-reading the shard.

The stream draws each sample from a source picked by weight, so consecutive draws come from different
shards. Before `lit_triune.data.shard_index`, the stream kept only the last shard read, as raw bytes, and a
draw from another shard read that whole shard again (every header and member up to its end); now it keeps
an index per shard (offset and size of each member) and reads one sample by seeking. Both variants run
the real `ShardStream` (training mode, the CPU default's six synthetic sources and mixing weights, 256
samples a shard as the data module writes them, `PromptBuilder` as in training), one after the other in
one process, alternating over rounds; the batches must be identical.

    python benchmarks/shard_reads.py [--per-source 1024] [--batches 40] [--rounds 3]

Last line: `ratio: <re-read time / indexed time>` (per batch of 16 prompts, median over rounds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

WEIGHTS = {"grounding": 3.0, "detection": 4.0, "ocr": 2.5, "math": 1.5, "counting": 1.0, "chart": 1.0}


class RereadShards:
    """The stream's reader before the index: the last shard read, whole, as raw samples."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.samples: list = []
        self.err: str | None = None

    def _load(self, path: str) -> None:
        from lit_triune.data.shards import ShardError, iter_shard

        if path != self.path:
            self.path, self.samples, self.err = path, [], None
            try:
                for raw in iter_shard(path):
                    self.samples.append(raw)
            except ShardError as e:
                self.err = str(e)

    def get(self, path: str, j: int):
        self._load(path)
        return self.samples[j] if j < len(self.samples) else None

    def error(self, path: str) -> str | None:
        self._load(path)
        return self.err


def _write(root: Path, per_source: int) -> list:
    from lit_triune.data import ShardWriter, Source, generate, resolve_shards

    sources = []
    for task, weight in WEIGHTS.items():
        out = root / task
        with ShardWriter(out, prefix=task, max_count=256) as w:
            for s in generate(task, per_source, seed=0):
                w.write(s)
        paths, counts = resolve_shards(str(out))
        sources.append(Source(f"synthetic_{task}", tuple(paths), tuple(counts), weight))
    return sources


def _draw(sources: list, batches: int, reader_cls) -> tuple[float, list]:
    import lit_triune.data.stream as stream_mod
    from lit_triune.data import PromptBuilder, ShardStream

    saved = stream_mod.ShardReader
    stream_mod.ShardReader = reader_cls
    try:
        stream = ShardStream(sources, PromptBuilder(), batch_size=16, train=True, seed=0)
        start = time.perf_counter()
        ids = [b.ids for b in islice(iter(stream), batches)]
        return time.perf_counter() - start, ids
    finally:
        stream_mod.ShardReader = saved


def main() -> None:
    from lit_triune.data.shard_index import ShardReader

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-source", type=int, default=1024)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sources = _write(Path(tmp), args.per_source)
        times: dict[str, list[float]] = {"reread": [], "indexed": []}
        for r in range(args.rounds):
            order = [("reread", RereadShards), ("indexed", ShardReader)]
            for name, cls in order if r % 2 == 0 else order[::-1]:
                t, ids = _draw(sources, args.batches, cls)
                times[name].append(t / args.batches)
                if name == "reread":
                    ref = ids
                else:
                    indexed = ids
            assert indexed == ref, "the two readers gave different batches"
    shards = sum(len(s.shards) for s in sources)
    print(f"{len(sources)} sources, {shards} shards of <= 256 samples, {args.batches} batches of 16, {args.rounds} rounds")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:8s} {1000 * med:8.1f} ms a batch   {16 / med:8.0f} samples/s")
    print("batches identical: yes")
    print(f"ratio: {statistics.median(times['reread']) / statistics.median(times['indexed']):.1f}")


if __name__ == "__main__":
    main()
