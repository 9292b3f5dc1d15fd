"""`ShardIndex` / `ShardReader`: the same samples as `iter_shard`, read by seeking, on good and broken shards."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
from shard_builders import build_corrupt_set, write_tar

from lit_triune.data.shard_index import ShardReader, index_shard
from lit_triune.data.shards import ShardError, ShardWriter, iter_shard
from lit_triune.data.synthetic import generate


def _streamed(path: Path) -> tuple[list, str | None]:
    """iter_shard's samples and error: the reference the index must agree with."""
    out: list = []
    try:
        for raw in iter_shard(path):
            out.append(raw)
    except ShardError as err:
        return out, str(err)
    return out, None


def _indexed(path: Path) -> tuple[list, str | None]:
    idx = index_shard(str(path))
    return [idx.read(j) for j in range(len(idx))], idx.error


def test_good_shards_read_alike(tmp_path):
    with ShardWriter(tmp_path, prefix="mix", max_count=5) as w:
        for task in ("counting", "grounding", "ocr"):
            for s in generate(task, 4, seed=1):
                w.write(s)
    shards = sorted(tmp_path.glob("*.tar"))
    assert len(shards) == 3
    for p in shards:
        streamed, indexed = _streamed(p), _indexed(p)
        assert streamed[1] is None and indexed[1] is None
        assert indexed[0] == streamed[0] and len(indexed[0]) in (2, 5)


def test_every_kind_of_broken_shard_reads_alike(tmp_path):
    """The 10-corruption set of `lit-triune-prepare check`: same readable prefix, an error exactly when
    iter_shard raises one, and the error names the file."""
    shard_dir, _ = build_corrupt_set(tmp_path)
    seen_error = 0
    for p in sorted(shard_dir.glob("*.tar")):
        (s_samples, s_error), (i_samples, i_error) = _streamed(p), _indexed(p)
        assert i_samples == s_samples, p.name
        assert (i_error is None) == (s_error is None), (p.name, s_error, i_error)
        if i_error is not None:
            seen_error += 1
            assert i_error.startswith(str(p)), i_error
    assert seen_error == 2  # the cut-short shard and the one that is not a tar


def test_members_and_metadata_rules(tmp_path):
    """Extensions lower-cased, WebDataset's `__meta__` names and directories skipped, keys in tar order."""
    p = tmp_path / "odd.tar"
    with tarfile.open(p, "w", format=tarfile.USTAR_FORMAT) as tar:
        d = tarfile.TarInfo("sub")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, data in [("__meta__", b"x"), ("a.JSON", b"{}"), ("a.img0.PNG", b"p"), ("sub/b.json", b"[]"),
                           ("noext", b"z"), ("c.json", b"1")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _indexed(p) == _streamed(p)
    assert [k for k, _ in _indexed(p)[0]] == ["a", "sub/b", "c"]
    assert _indexed(p)[0][0][1] == {"json": b"{}", "img0.png": b"p"}


def test_duplicate_member_stops_like_the_stream(tmp_path):
    p = write_tar(tmp_path / "dup.tar", [("a.json", b"{}"), ("b.json", b"1"), ("b.json", b"2"), ("c.json", b"3")])
    streamed, indexed = _streamed(p), _indexed(p)
    assert indexed[0] == streamed[0] == [("a", {"json": b"{}"})]
    assert indexed[1] is not None and streamed[1] is not None


def test_compressed_shard_is_read_whole(tmp_path):
    plain = write_tar(tmp_path / "p.tar", [("a.json", b"{}"), ("b.json", b"[]")])
    gz = tmp_path / "g.tar"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    idx = index_shard(str(gz))
    assert idx.whole is not None and [idx.read(j) for j in range(len(idx))] == _streamed(plain)[0]


def test_reader_keeps_recent_indexes_and_reports_missing_samples(tmp_path):
    paths = [write_tar(tmp_path / f"s{i}.tar", [(f"k{i}{j}.json", bytes([j])) for j in range(3)]) for i in range(3)]
    reader = ShardReader(capacity=2)
    assert reader.get(str(paths[0]), 1) == ("k01", {"json": b"\x01"})
    reader.get(str(paths[1]), 0)
    reader.get(str(paths[2]), 2)
    assert list(reader._indexes) == [str(paths[1]), str(paths[2])]  # the least recent one was dropped
    assert reader.get(str(paths[0]), 3) is None and reader.error(str(paths[0])) is None


def test_a_shard_rewritten_after_indexing_is_an_error_not_wrong_bytes(tmp_path):
    p = write_tar(tmp_path / "s.tar", [("a.json", b"{}" * 400), ("b.json", b"[]")])
    reader = ShardReader()
    assert reader.get(str(p), 1) == ("b", {"json": b"[]"})
    p.write_bytes(p.read_bytes()[:700])
    with pytest.raises(ShardError, match="s.tar"):
        reader.get(str(p), 1)
