"""What a verifier worker process runs: the rewards code and nothing else (no torch, no Lightning).

`VerifierPool` starts its workers from this module, not from the script that launched the trainer
(see `lit_triune/rewards/lean_mp.py` for why that needs care), and the forkserver preloads it through
`lit_triune.rewards.forkserver_preload`. Also home of `die_with_parent`, which the data loader's
workers use too: every helper process of a run asks Linux to kill it when its parent dies, so a
SIGKILLed trainer leaves nothing running.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send `sig` to this process when its parent exits (Linux `PR_SET_PDEATHSIG`).

    `parent_pid` is the process that started this one, when known; without it the parent at call time
    is taken. If that parent is already gone the signal is sent now (the kernel would not). Returns
    False where the call is unsupported (not Linux): the caller's other shutdown paths still apply.
    Note Linux fires the signal when the *thread* that forked this process exits: start helpers from
    a thread that lives as long as the process (the main thread).
    """
    if not sys.platform.startswith("linux"):
        return False
    expected = os.getppid() if parent_pid is None else parent_pid
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != expected:  # the parent died before the call took effect
        os.kill(os.getpid(), sig)
    return True


class _PipeLogHandler(logging.Handler):
    """Sends log records (and warnings, and stray stderr lines) to the parent, which logs them."""

    def __init__(self, conn: Any) -> None:
        super().__init__(logging.INFO)
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.conn.send(("log", record.levelno, record.name, self.format(record)[:4000]))
        except Exception:  # noqa: BLE001 - the parent is gone or the pipe is shut: nothing to tell
            pass


class _StderrToLog:
    """A file-like `sys.stderr` that turns each written line into a WARNING record."""

    def __init__(self) -> None:
        self._buf = ""
        self._log = logging.getLogger("lit_triune.rewards.worker.stderr")

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self._log.warning(line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _route_output(conn: Any) -> None:
    root = logging.getLogger()
    root.handlers[:] = [_PipeLogHandler(conn)]
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)  # numpy/sympy warnings become records of the "py.warnings" logger
    sys.stderr = _StderrToLog()  # type: ignore[assignment]


# CPython starts a full (generation-2) collection once 10 generation-1 collections have passed (and the heap
# grew by a quarter); in a worker that has scored a few thousand completions one takes 40-60 ms CPU and landed
# inside whichever completion allocated at that moment (`\tan(\pi)`: 74 ms, 63 of them the collection). The
# worker runs them itself, after sending a result: when no task is waiting, or when one is overdue.
FULL_GC_DUE = 10  # generation-1 collections since the last full one (CPython's own threshold)
FULL_GC_OVERDUE = 100  # then even with tasks waiting: cyclic garbage stays bounded under a full queue


def _full_collection_between_tasks(conn: Any) -> None:
    due = gc.get_count()[2]
    if due >= FULL_GC_OVERDUE or (due >= FULL_GC_DUE and not conn.poll()):
        gc.collect()


def worker_main(conn: Any, imports: Sequence[str], budget_s: float) -> None:
    """Worker loop: receive (task_id, kwargs), send (task_id, result dict); None or EOF ends it."""
    die_with_parent()  # the forkserver (or, under spawn, the trainer)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    _route_output(conn)
    from lit_triune.rewards.result import make_result
    from lit_triune.rewards.scoring import score_sample, warm_up

    for module in ("lit_triune.rewards", *imports):
        importlib.import_module(module)
    warm_up()  # before 'ready': imports must never be cut by a budget
    threshold0, threshold1, _ = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, 1_000_000_000)  # no automatic full collection inside a completion
    try:
        conn.send(("ready", os.getpid()))
        while True:
            msg = conn.recv()
            if msg is None:
                return
            task_id, kwargs = msg
            try:
                result = score_sample(**kwargs, budget_s=budget_s)
            except BaseException as err:  # score_sample never raises; this guards the guard
                rm = kwargs.get("reward_model")
                name = str(rm.get("verifier")) if isinstance(rm, dict) else "?"
                result = make_result(name, 0.0, 0.0, 0.0, "crash", f"worker raised {type(err).__name__}: {err}"[:500])
            conn.send((task_id, result))
            _full_collection_between_tasks(conn)
    except (EOFError, OSError):  # the pool closed or the parent died: leave without a traceback
        return
