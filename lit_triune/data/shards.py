"""WebDataset tar shards: one `.json` sample spec plus its image members per key, and a manifest.

Member names are `<key>.json` and `<key>.img<i>.<ext>`; keys hold no dots because WebDataset
splits the key from the extension at the first dot. Images keep their original encoding.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_triune.data.images import image_bytes, sniff_ext
from lit_triune.data.schema import SampleError, validate_sample

MANIFEST = "manifest.json"
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]")


class ShardError(ValueError):
    """A shard (or its manifest) that cannot be read; the message starts with the file's path."""


def shard_key(raw: str) -> str:
    """A WebDataset-safe key: no dots, no path separators."""
    key = _KEY_CHARS.sub("_", str(raw))
    return key or "_"


@dataclass
class Manifest:
    """Counts per shard, source and verifier, so readers can plan and resume without scanning."""

    shards: list[dict[str, Any]] = field(default_factory=list)  # [{"path", "count", "sources"}]

    @property
    def total(self) -> int:
        return sum(s["count"] for s in self.shards)

    def by(self, what: str) -> dict[str, int]:
        out: Counter = Counter()
        for s in self.shards:
            out.update(s[what])
        return dict(sorted(out.items()))

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "total": self.total, "by_source": self.by("sources"),
                "by_verifier": self.by("verifiers"), "shards": self.shards}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        path = Path(directory) / MANIFEST
        try:
            data = json.loads(path.read_text())
            return cls(shards=[{**s, "count": int(s["count"])} for s in data["shards"]])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            raise ShardError(f"{path}: unreadable manifest: {type(err).__name__}: {err}") from err


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # mtime 0: byte-identical shards per seed
    tar.addfile(info, io.BytesIO(data))


class ShardWriter:
    """Validates each sample (images decoded) and writes shards of at most `max_count` samples.

    Raises SampleError naming the shard and key of the first invalid sample; `close()` writes
    the manifest and returns it.
    """

    def __init__(self, out_dir: str | Path, *, prefix: str = "shard", max_count: int = 1000,
                 verifiers: frozenset[str] | None = None) -> None:
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix, self.max_count, self.verifiers = prefix, max_count, verifiers
        self.manifest = Manifest()
        self._tar: tarfile.TarFile | None = None
        self._keys: set[str] = set()

    def _shard_name(self) -> str:
        return f"{self.prefix}-{len(self.manifest.shards):06d}.tar"

    def write(self, sample: dict[str, Any]) -> str:
        key = shard_key(sample.get("extra_info", {}).get("id", "") if isinstance(sample.get("extra_info"), dict) else "")
        if self._tar is None or self.manifest.shards[-1]["count"] >= self.max_count:
            self._open_next()
        shard = self.manifest.shards[-1]["path"]
        try:
            validate_sample(sample, verifiers=self.verifiers, check_images=True)
        except SampleError as err:
            raise err.located(shard, key) from err
        if key in self._keys:
            raise SampleError("extra_info.id", f"duplicate id (key {key!r}); ids must be unique", shard=shard, key=key)
        self._keys.add(key)
        spec = dict(sample)
        images = []
        for i, img in enumerate(sample["images"]):
            data = image_bytes(img)
            if data is None:  # PIL image: encode losslessly
                from lit_triune.data.images import encode_png

                data = encode_png(img)
            member = f"img{i}.{sniff_ext(data)}"
            _add(self._tar, f"{key}.{member}", data)
            path = img.get("path") if isinstance(img, dict) else None
            images.append({"member": member, "path": path})
        spec["images"] = images
        _add(self._tar, f"{key}.json", json.dumps(spec, sort_keys=True, ensure_ascii=False).encode())
        entry = self.manifest.shards[-1]
        entry["count"] += 1
        entry["sources"][sample["data_source"]] = entry["sources"].get(sample["data_source"], 0) + 1
        verifier = sample["reward_model"]["verifier"]
        entry["verifiers"][verifier] = entry["verifiers"].get(verifier, 0) + 1
        return key

    def _open_next(self) -> None:
        if self._tar is not None:
            self._tar.close()
        name = self._shard_name()
        self._tar = tarfile.open(self.out_dir / name, "w", format=tarfile.USTAR_FORMAT)
        self.manifest.shards.append({"path": name, "count": 0, "sources": {}, "verifiers": {}})

    def close(self) -> Manifest:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        self.manifest.save(self.out_dir)
        return self.manifest

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RawSample = tuple[str, dict[str, bytes]]  # (key, {extension: bytes})


def iter_shard(path: str | Path) -> Iterator[RawSample]:
    """Raw members grouped by key, in tar order, via WebDataset's tar iterator (no decoding).

    A tar that cannot be read (or stops being readable part-way) raises `ShardError` naming the file
    and the last key read; the samples before that point have been yielded.
    """
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    last = None
    try:
        with open(path, "rb") as f:
            files = ({**d, "__url__": str(path)} for d in tar_file_iterator(f))
            for group in group_by_keys(files):
                key = last = group.pop("__key__")
                group.pop("__url__", None)
                yield key, {k: v for k, v in group.items() if not k.startswith("__")}
        check_end(path, last)
    except ShardError:
        raise
    except Exception as err:  # noqa: BLE001 - tarfile, IO and WebDataset errors alike: say which file
        after = f" after key {last!r}" if last is not None else ""
        raise ShardError(f"{path}: unreadable{after}: {type(err).__name__}: {err}") from err


def check_end(path: str | Path, last: str | None) -> None:
    """tarfile ends a tar cut inside a header silently, as if it were complete: a whole tar ends in two
    zero blocks (its end-of-archive marker), so a file that does not was cut short."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - 1024))
        tail = f.read()
    if size % 512 or size < 1024 or tail.count(0) != len(tail):
        raise ShardError(f"{path}: truncated after key {last!r}: no end-of-archive marker (file size {size} bytes)")


def decode_raw(raw: RawSample, shard: str = "") -> dict[str, Any]:
    """Raw members -> sample dict with `images` as [{"bytes", "path"}]; validated, errors located."""
    key, members = raw
    if "json" not in members:
        raise SampleError("<json>", f"no .json member (members: {sorted(members)})", shard=shard, key=key)
    try:
        spec = json.loads(members["json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SampleError("<json>", f"not valid JSON: {err}", shard=shard, key=key) from err
    if not isinstance(spec, dict) or not isinstance(spec.get("images"), list):
        raise SampleError("images", "missing or not a list", shard=shard, key=key)
    images = []
    for i, entry in enumerate(spec["images"]):
        member = entry.get("member") if isinstance(entry, dict) else None
        if member not in members:
            raise SampleError(f"images[{i}]", f"member {member!r} missing from the shard", shard=shard, key=key)
        images.append({"bytes": members[member], "path": entry.get("path")})
    spec["images"] = images
    try:
        validate_sample(spec)
    except SampleError as err:
        raise err.located(shard, key) from err
    return spec


def count_shard(path: str | Path) -> int:
    """Samples in a shard without a manifest: count `.json` members."""
    try:
        with tarfile.open(path, "r") as tar:
            return sum(1 for m in tar.getmembers() if m.name.endswith(".json"))
    except (OSError, tarfile.TarError, EOFError) as err:
        raise ShardError(f"{path}: unreadable: {type(err).__name__}: {err}") from err


def resolve_shards(spec: str | list[str]) -> tuple[list[str], list[int]]:
    """A directory, glob or list of either -> (sorted shard paths, sample count per shard)."""
    paths, counts = find_shards(spec)
    return paths, [counts[p] if p in counts else count_shard(p) for p in paths]


def find_shards(spec: str | list[str]) -> tuple[list[str], dict[str, int]]:
    """A directory, glob or list of either -> (sorted shard paths, the manifests' counts by path)."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    paths: list[str] = []
    counts: dict[str, int] = {}
    for s in specs:
        s = os.path.expanduser(str(s))
        if os.path.isdir(s):
            if os.path.exists(os.path.join(s, MANIFEST)):
                for entry in Manifest.load(s).shards:
                    p = os.path.join(s, entry["path"])
                    counts[p] = entry["count"]
            found = sorted(glob.glob(os.path.join(s, "*.tar")))
        else:
            found = sorted(glob.glob(s))
        if not found:
            raise FileNotFoundError(f"no .tar shards match {s!r}")
        paths.extend(found)
    return sorted(dict.fromkeys(paths)), counts
