"""Processes started without the launching script: multiprocessing's forkserver/spawn, minus `__main__`.

Why: before a forkserver or spawn child unpickles its target, `multiprocessing.spawn.prepare` re-runs
the parent's `__main__` script as `__mp_main__` (the preparation data carries `init_main_from_path`,
or `init_main_from_name` under `python -m`). For the trainer that script is `lit_triune/main.py`,
whose module-level imports pull in Lightning and torch: 852 MB and ~8 s per verifier worker, paid
again on every replacement. A verifier worker needs none of it (its target lives in
`lit_triune.rewards.worker`, which imports no torch), so the processes started here get the same
preparation data minus those two keys: `sys.path`, the working directory and the authkey still travel.

Consequence: code defined in the launching script is not visible in the children; custom verifiers
come from importable modules (`VerifierPool(imports=...)` or the entry-point group).

This is the one adapter over multiprocessing internals (`Popen._launch`, the module global `spawn`
it reads). The stdlib `_launch` code is reused as is, with its `spawn` global rebound to a proxy whose
`get_preparation_data` drops the main-module keys; `check_supported()` refuses a Python whose
`_launch` does not read the data that way, and tests/rewards/test_lean_workers.py checks the result
(no torch in a worker started from a script that imported torch).
"""

from __future__ import annotations

import sys
import types
from multiprocessing import context, popen_forkserver, popen_spawn_posix, spawn
from typing import Any

_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")


class _SpawnWithoutMain:
    """`multiprocessing.spawn` as `_launch` sees it, except that the launching script stays behind."""

    def __getattr__(self, name: str) -> Any:
        return getattr(spawn, name)

    @staticmethod
    def get_preparation_data(name: str) -> dict[str, Any]:
        data = spawn.get_preparation_data(name)
        for key in _MAIN_KEYS:
            data.pop(key, None)
        return data


def _rebound_launch(popen_cls: type) -> Any:
    """`popen_cls._launch` with the module global `spawn` replaced by `_SpawnWithoutMain`."""
    fn = popen_cls._launch
    namespace = dict(vars(sys.modules[popen_cls.__module__]))
    namespace["spawn"] = _SpawnWithoutMain()
    return types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


def check_supported() -> None:
    """Raise if this Python's `Popen._launch` does not take its preparation data from `spawn`."""
    for cls in (popen_forkserver.Popen, popen_spawn_posix.Popen):
        code = cls._launch.__code__
        if not {"spawn", "get_preparation_data"} <= set(code.co_names) or code.co_freevars:
            raise RuntimeError(
                f"{cls.__module__}.Popen._launch no longer reads spawn.get_preparation_data; lean verifier "
                "workers are untested on this Python: update lit_triune/rewards/lean_mp.py")


class _LeanForkserverPopen(popen_forkserver.Popen):
    _launch = _rebound_launch(popen_forkserver.Popen)


class _LeanSpawnPopen(popen_spawn_posix.Popen):
    _launch = _rebound_launch(popen_spawn_posix.Popen)


class LeanForkserverProcess(context.ForkServerProcess):
    """A forkserver child that does not re-run the launching script."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _LeanForkserverPopen(process_obj)


class LeanSpawnProcess(context.SpawnProcess):
    """A spawned child that does not re-run the launching script."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _LeanSpawnPopen(process_obj)


PROCESS_CLASSES = {"forkserver": LeanForkserverProcess, "spawn": LeanSpawnProcess}
