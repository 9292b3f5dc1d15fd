"""Resuming a fit from a checkpoint that cannot be read: fall back to the newest one that can, saying so.

`fit --ckpt_path=last` (or an explicit path) whose checkpoint is missing, truncated (a kill while it was
written, a full disk) or corrupt would end with torch's raw error. `resolve_resume` checks the chosen
checkpoint first and, if it cannot be read, takes the newest readable `*.ckpt` of the same directory (by
modification time, as Lightning picks `last`; ties by the `step=N` in the name), with a warning naming the
bad file, why, and the one used; when none is readable it raises `ResumeError` naming every file tried.
`last` with a ModelCheckpoint without `dirpath` (conf/tiny.yaml, conf/orsta.yaml: checkpoints under the
logger's version directory) looks in the logger's earlier versions too: a new run gets a new version, whose
directory has no last checkpoint, and Lightning alone would start afresh.

The check reads each file once and allocates no tensors: a torch checkpoint is a zip archive, and
`zipfile.ZipFile.testzip` streams every member through its CRC-32 (which torch writes by default), so a
truncated file (no central directory), garbage, a bit flip or a missing `data.pkl` is found with constant
memory. (`torch.load(mmap=True)` would also avoid a second copy of the weights, but it unpickles the file and
never reads the tensor bytes, so a corrupt tensor would only surface later.) A sharded checkpoint (FSDP /
FSDP2: a directory) is checked by its metadata: its `meta.pt` as above and a non-empty DCP `.metadata`.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_warn

_STEP = re.compile(r"step=(\d+)")


class ResumeError(RuntimeError):
    """No checkpoint of the resume directory can be read."""


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why the checkpoint at `path` cannot be read (a file or a sharded directory), or None if it can."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        meta = path / "meta.pt"
        if not meta.is_file():
            return "sharded checkpoint directory without meta.pt"
        problem = _zip_problem(meta)
        if problem is not None:
            return f"meta.pt: {problem}"
        dcp = path / ".metadata"
        if not dcp.is_file() or dcp.stat().st_size == 0:
            return "sharded checkpoint directory without its .metadata"
        return None
    return _zip_problem(path)


def _zip_problem(path: Path) -> str | None:
    size = path.stat().st_size
    if size == 0:
        return "empty file"
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if not any(m.filename.endswith("/data.pkl") or m.filename == "data.pkl" for m in members):
                return "no data.pkl in the archive (not a torch checkpoint)"
            if all(m.CRC == 0 for m in members if m.file_size):  # saved with compute_crc32 off: no CRCs to check
                return None
            bad = archive.testzip()  # reads every member through its CRC-32; allocates no tensors
    except zipfile.BadZipFile as e:
        return f"not a readable zip archive ({e}; truncated or not a torch checkpoint; {size} bytes)"
    except (OSError, EOFError, ValueError) as e:  # a member running past the end of a truncated file, ...
        return f"unreadable ({type(e).__name__}: {e})"
    if bad is not None:
        return f"CRC mismatch in {bad!r} (corrupt)"
    return None


def _newest_first(paths: list[Path]) -> list[Path]:
    def key(p: Path) -> tuple[int, int]:
        m = _STEP.search(p.name)
        return p.stat().st_mtime_ns, int(m.group(1)) if m else -1

    return sorted(paths, key=key, reverse=True)


def choose_checkpoint(path: str | os.PathLike, directory: str | os.PathLike | None = None) -> tuple[Path, list[tuple[Path, str]]]:
    """The checkpoint to resume from: `path` if it can be read, else the newest readable `*.ckpt` of
    `directory` (default: `path`'s own). Returns it with the (path, why) of each unreadable one tried before
    it; raises ResumeError naming them all when none can be read."""
    path = Path(path)
    problem = checkpoint_problem(path)
    if problem is None:
        return path, []
    tried = [(path, problem)]
    directory = Path(directory) if directory is not None else path.parent
    seen = {os.path.realpath(path)}
    others = [p for p in directory.glob("*.ckpt") if os.path.realpath(p) not in seen] if directory.is_dir() else []
    for candidate in _newest_first(others):
        if os.path.realpath(candidate) in seen:  # `last.ckpt` as a link to a step file already tried
            continue
        seen.add(os.path.realpath(candidate))
        problem = checkpoint_problem(candidate)
        if problem is None:
            return candidate, tried
        tried.append((candidate, problem))
    lines = "\n".join(f"  {p}: {why}" for p, why in tried)
    raise ResumeError(f"cannot resume: no readable checkpoint in {directory}; tried\n{lines}")


def checkpoint_dir(trainer: Any) -> Path | None:
    """The directory a `ModelCheckpoint` of `trainer` saves to, as Lightning resolves it (its `dirpath`, else
    `<logger save_dir>/<name>/<version>/checkpoints`, else `<default_root_dir>/checkpoints`), or None."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    callback = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    if callback is None:
        return None
    if callback.dirpath is not None:
        return Path(callback.dirpath)
    if trainer.loggers:
        logger = trainer.loggers[0]
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        return Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / version / "checkpoints"
    return Path(trainer.default_root_dir) / "checkpoints"


def _last_checkpoints(directory: Path) -> list[Path]:
    """`last.ckpt` / `last-v<N>.ckpt` of `directory`, newest first (Lightning's `ckpt_path="last"` takes it)."""
    return _newest_first([p for p in directory.glob("last*.ckpt") if re.match(r"^last(-v?\d+)?$", p.stem)])


def _in_logger_version(trainer: Any) -> bool:
    """Whether the ModelCheckpoint saves under the logger's version directory (no `dirpath` of its own)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    callback = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    return callback is not None and callback.dirpath is None and bool(trainer.loggers)


def _earlier_versions_lasts(directory: Path) -> list[Path]:
    """The last checkpoints of the logger's other versions (`<save_dir>/<name>/*/checkpoints`), newest first:
    without a `dirpath` each run saves under its own new logger version, so `last` of a new run is in an
    earlier one (conf/tiny.yaml, conf/orsta.yaml)."""
    versions = [d for d in directory.parent.parent.glob("*/checkpoints") if d != directory]
    return _newest_first([p for d in versions for p in _last_checkpoints(d)])


def resolve_resume(trainer: Any, ckpt_path: Any) -> Any:
    """`ckpt_path` for `trainer.fit`, with an unreadable checkpoint replaced by the newest readable one of its
    directory (a warning says which and why). `None`, "best", "hpc" and `last` when there is no last
    checkpoint on disk are returned unchanged (Lightning handles them); a remote path (`s3://...`) too."""
    if ckpt_path is None or ckpt_path in ("best", "hpc") or "://" in str(ckpt_path):
        return ckpt_path
    directory = None
    if ckpt_path == "last":
        directory = checkpoint_dir(trainer)
        lasts = _last_checkpoints(directory) if directory is not None and directory.is_dir() else []
        if not lasts and directory is not None and _in_logger_version(trainer):
            lasts = _earlier_versions_lasts(directory)
            if lasts:  # the resumed run logs to a new logger version, whose checkpoint directory is empty
                directory = lasts[0].parent
                rank_zero_warn(f"resume: no last checkpoint in this run's {checkpoint_dir(trainer)} (a new "
                               f"logger version); using the newest of the earlier versions: {lasts[0]}")
        if not lasts:
            return ckpt_path  # Lightning warns that there is no last checkpoint and starts afresh
        path = lasts[0]
    else:
        path = Path(ckpt_path)
    chosen, bad = choose_checkpoint(path, directory)
    if bad:
        reasons = "; ".join(f"{p} ({why})" for p, why in bad)
        rank_zero_warn(f"resume: cannot read checkpoint {reasons}; resuming from the newest readable one "
                       f"instead: {chosen}")
    return str(chosen) if bad else ckpt_path
