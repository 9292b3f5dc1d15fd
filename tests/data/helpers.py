"""Small builders shared by the data tests."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from lit_triune.data.shards import iter_shard


def rewrite_shard(path: Path, edit) -> None:
    """Rewrite a shard in place, passing each (key, members) through `edit` (which may mutate it)."""
    samples = list(iter_shard(path))
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            edit(key, members)
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def edit_json(members: dict, fn) -> None:
    spec = json.loads(members["json"])
    fn(spec)
    members["json"] = json.dumps(spec).encode()
