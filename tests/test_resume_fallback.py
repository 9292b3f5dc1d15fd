"""lit_triune/resume.py: an unreadable checkpoint to resume from gives way to the newest readable one of its
directory, with a warning naming the bad file and why; none readable is an error naming every file tried.
(The end-to-end fit: tests/rl/test_resume_fallback_fit.py.)"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_triune.resume import ResumeError, checkpoint_problem, choose_checkpoint, resolve_resume


def _good(path: Path, step: int, mtime: float) -> Path:
    torch.save({"global_step": step, "state_dict": {"w": torch.full((64,), float(step))}}, path)
    os.utime(path, (mtime, mtime))
    return path


def _truncated(path: Path, step: int, mtime: float) -> Path:
    _good(path, step, mtime)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    os.utime(path, (mtime, mtime))
    return path


def _garbage(path: Path, mtime: float) -> Path:
    path.write_bytes(b"\x00not a checkpoint" * 40)
    os.utime(path, (mtime, mtime))
    return path


def _bit_flipped(path: Path, step: int, mtime: float) -> Path:
    """A whole archive whose tensor bytes changed after it was written (a CRC mismatch)."""
    _good(path, step, mtime)
    data = bytearray(path.read_bytes())
    at = data.index(torch.full((64,), float(step)).numpy().tobytes())  # the stored tensor
    data[at + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, (mtime, mtime))
    return path


def test_problems_are_named(tmp_path: Path) -> None:
    t = time.time()
    assert checkpoint_problem(_good(tmp_path / "good.ckpt", 1, t)) is None
    assert "truncated" in checkpoint_problem(_truncated(tmp_path / "cut.ckpt", 2, t))
    assert "not a readable zip" in checkpoint_problem(_garbage(tmp_path / "junk.ckpt", t))
    assert "CRC mismatch" in checkpoint_problem(_bit_flipped(tmp_path / "flip.ckpt", 3, t))
    assert checkpoint_problem(tmp_path / "absent.ckpt") == "missing"
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert checkpoint_problem(tmp_path / "empty.ckpt") == "empty file"
    # a sharded (FSDP) checkpoint directory is checked by its metadata
    shard = tmp_path / "sharded.ckpt"
    shard.mkdir()
    assert "meta.pt" in checkpoint_problem(shard)
    torch.save({"global_step": 4}, shard / "meta.pt")
    assert ".metadata" in checkpoint_problem(shard)
    (shard / ".metadata").write_bytes(b"x")
    assert checkpoint_problem(shard) is None


def test_falls_back_to_the_newest_readable(tmp_path: Path) -> None:
    t = time.time() - 100
    _good(tmp_path / "step=1.ckpt", 1, t)
    good = _good(tmp_path / "step=2.ckpt", 2, t + 1)
    _bit_flipped(tmp_path / "step=3.ckpt", 3, t + 2)
    _garbage(tmp_path / "step=4.ckpt", t + 3)
    last = _truncated(tmp_path / "last.ckpt", 4, t + 4)
    chosen, bad = choose_checkpoint(last)
    assert chosen == good
    assert [p.name for p, _ in bad] == ["last.ckpt", "step=4.ckpt", "step=3.ckpt"]
    # a readable checkpoint is taken as it is
    assert choose_checkpoint(good) == (good, [])
    # an explicit path that does not exist falls back in its directory too
    assert choose_checkpoint(tmp_path / "step=9.ckpt")[0] == good


def test_equal_times_are_ordered_by_step(tmp_path: Path) -> None:
    t = time.time()
    _good(tmp_path / "step=10.ckpt", 10, t)
    _good(tmp_path / "step=9.ckpt", 9, t)
    assert choose_checkpoint(_garbage(tmp_path / "last.ckpt", t + 1))[0].name == "step=10.ckpt"


def test_none_readable_names_every_file(tmp_path: Path) -> None:
    t = time.time()
    _garbage(tmp_path / "step=1.ckpt", t)
    _truncated(tmp_path / "last.ckpt", 2, t + 1)
    with pytest.raises(ResumeError) as err:
        choose_checkpoint(tmp_path / "last.ckpt")
    assert "last.ckpt" in str(err.value) and "step=1.ckpt" in str(err.value), str(err.value)


def _trainer(dirpath: Path) -> SimpleNamespace:
    return SimpleNamespace(checkpoint_callbacks=[ModelCheckpoint(dirpath=dirpath)], loggers=[],
                           default_root_dir=str(dirpath.parent))


def test_resolve_last_warns_and_names_the_file_used(tmp_path: Path) -> None:
    t = time.time() - 10
    good = _good(tmp_path / "step=2.ckpt", 2, t)
    _truncated(tmp_path / "last.ckpt", 3, t + 1)
    with pytest.warns(UserWarning, match=r"cannot read checkpoint .*last\.ckpt \(not a readable zip.*step=2\.ckpt"):
        assert resolve_resume(_trainer(tmp_path), "last") == str(good)
    # readable: unchanged, silently; no checkpoint directory yet: left to Lightning ("no last checkpoint")
    _good(tmp_path / "last.ckpt", 3, t + 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_resume(_trainer(tmp_path), "last") == "last"
        assert resolve_resume(_trainer(tmp_path), str(good)) == str(good)
        assert resolve_resume(_trainer(tmp_path / "none"), "last") == "last"
        assert resolve_resume(_trainer(tmp_path), None) is None


def test_last_of_an_earlier_logger_version(tmp_path: Path) -> None:
    """Without a `dirpath` (conf/tiny.yaml, conf/orsta.yaml) a new run checkpoints under a new logger version,
    where there is no last checkpoint yet: `last` is the newest of the earlier versions'."""
    t = time.time() - 10
    for version in (0, 1):
        (tmp_path / "tiny" / f"version_{version}" / "checkpoints").mkdir(parents=True)
    _good(tmp_path / "tiny" / "version_0" / "checkpoints" / "last.ckpt", 3, t)
    newest = _good(tmp_path / "tiny" / "version_1" / "checkpoints" / "step=6.ckpt", 6, t + 1)
    _truncated(tmp_path / "tiny" / "version_1" / "checkpoints" / "last.ckpt", 7, t + 2)
    logger = SimpleNamespace(save_dir=str(tmp_path), name="tiny", version=2)
    trainer = SimpleNamespace(checkpoint_callbacks=[ModelCheckpoint()], loggers=[logger],
                              default_root_dir=str(tmp_path))
    with pytest.warns(UserWarning) as record:
        assert resolve_resume(trainer, "last") == str(newest)
    messages = [str(w.message) for w in record]
    assert any("version_2" in m and "earlier versions" in m and "version_1/checkpoints/last.ckpt" in m
               for m in messages), messages
    assert any("cannot read checkpoint" in m for m in messages), messages
