"""A deterministic train / validation split of a converted sample set (`lit-triune-prepare ... --val-fraction`).

A sample goes to validation by its `extra_info.id` alone: the `round(fraction * n)` ids with the smallest
SHA-256 of `"<seed>:<id>"` (at least one when the fraction is positive, never all). So the split does not
depend on the input's order, and the same ids, fraction and seed give the same split on any machine.
Two passes over the samples (ids first, then the writing), so no image is held in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lit_triune.data.shards import Manifest, ShardWriter


def _rank(seed: int, sid: str) -> bytes:
    return hashlib.sha256(f"{seed}:{sid}".encode()).digest()


def validation_ids(ids: Iterable[str], fraction: float, seed: int = 0) -> set[str]:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {fraction}")
    ids = list(dict.fromkeys(ids))
    if fraction == 0.0 or len(ids) < 2:
        if fraction and len(ids) < 2:
            raise ValueError(f"cannot split {len(ids)} sample(s) into train and val; drop --val-fraction")
        return set()
    k = min(max(1, round(fraction * len(ids))), len(ids) - 1)
    return set(sorted(ids, key=lambda sid: _rank(seed, sid))[:k])


def write_split(make_samples: Callable[[], Iterable[dict[str, Any]]], out: str | Path, fraction: float,
                seed: int = 0, *, prefix: str = "shard", shard_size: int = 1000) -> dict[str, Manifest]:
    """Writes `<out>/train` and `<out>/val`; `make_samples()` is called twice (ids, then samples)."""
    val = validation_ids((str(s["extra_info"]["id"]) for s in make_samples()), fraction, seed)
    out = Path(out)
    with ShardWriter(out / "train", prefix=prefix, max_count=shard_size) as train_w, \
            ShardWriter(out / "val", prefix=prefix, max_count=shard_size) as val_w:
        for sample in make_samples():
            (val_w if str(sample["extra_info"]["id"]) in val else train_w).write(sample)
    return {"train": train_w.manifest, "val": val_w.manifest}
