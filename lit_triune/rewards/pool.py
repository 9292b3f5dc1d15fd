"""`VerifierPool`: rewards computed in worker processes, overlapping generation, with hard per-sample timeouts.

Why processes: math-verify and sympy hold the GIL and can spin for seconds on hostile input; a thread
cannot be stopped, a process can be killed. Why "forkserver" (or "spawn"), never "fork": the trainer
holds torch's OpenMP/intra-op threads (and CUDA state on GPUs); forking a multi-threaded process copies
locks held by threads that don't exist in the child, which deadlocks. The forkserver is a fresh
interpreter that preloads `lit_triune.rewards`, math-verify and sympy, so a replacement costs a fork, not an import.
Workers run `lit_triune.rewards.worker` and never the script that launched the trainer (`lean_mp.py`): no
torch, no Lightning. They die with their parent (`die_with_parent`), and their warnings and stderr come
back through the pipe as records of the `lit_triune.rewards.worker` logger.

Each worker has its own pipe, so the parent always knows which sample a worker holds: the parent
enforces the hard deadline (kill + replace the worker), and a worker that dies gets its sample retried
once (`retry_crashed`) or scored 0 with `failure="crash"`. Inside the worker a soft budget of
`soft_fraction * timeout_s` lets slow Python code return `failure="timeout"` without costing a respawn.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import multiprocessing.util  # noqa: F401  -- registers its exit handler before ours, so ours runs first
import os
import threading
import time
import weakref
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any

from lit_triune.rewards.lean_mp import PROCESS_CLASSES, check_supported
from lit_triune.rewards.result import FAILURES, make_result
from lit_triune.rewards.scoring import batch_image_sizes, score_sample
from lit_triune.rewards.worker import worker_main

_log = logging.getLogger("lit_triune.rewards.worker")

_MAX_START_FAILURES = 5

_OPEN_POOLS: weakref.WeakSet[VerifierPool] = weakref.WeakSet()


@atexit.register
def _close_open_pools() -> None:
    """A pool still open at interpreter exit is closed before multiprocessing's own exit handler terminates
    the workers. Without this, the dispatcher thread saw those workers die and started replacements while the
    interpreter shut down; a replacement cut off between asking the forkserver for a child and sending it its
    start-up data made the forkserver's child print an `EOFError` traceback into the trainer's stderr."""
    for pool in list(_OPEN_POOLS):
        try:
            pool.close()
        except Exception:
            pass


@dataclass
class _Task:
    id: int
    kwargs: dict[str, Any]
    future: Future
    verifier: str
    attempts: int = 0


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    ready: bool = False
    tasks: deque[_Task] = field(default_factory=deque)  # sent, in the order the worker runs them
    deadline: float = 0.0  # hard deadline of tasks[0], the one running now


class VerifierPool:
    """Score completions in `num_workers` processes; `num_workers=0` scores in-process (debugging).

    Args:
        num_workers: worker processes; 0 runs every sample synchronously in the caller.
        timeout_s: hard wall-clock limit per sample, counted from dispatch to a ready worker.
        start_method: "forkserver" (default) or "spawn"; "fork" is refused (see module docstring).
        retry_crashed: give a sample whose worker died one more try before scoring it 0.
        imports: extra modules each worker imports, e.g. ones that `@register_verifier` custom verifiers.
        soft_fraction: the in-worker budget as a fraction of `timeout_s`.
        prefetch: samples queued per worker, so a worker never idles waiting for the parent's next send.

    Example::

        with VerifierPool(num_workers=2, timeout_s=5.0) as pool:
            handles = [pool.submit(r, rm, image_size=(h, w), iou_threshold=0.85) for r, rm in arrivals]
            results = [h.result() for h in handles]
            pool.failure_counts()  # {"mathverify": {"timeout": 0, "crash": 0, "parse": 3, "spec": 0}, ...}
    """

    def __init__(
        self,
        num_workers: int = 2,
        timeout_s: float = 5.0,
        *,
        start_method: str = "forkserver",
        retry_crashed: bool = True,
        imports: Sequence[str] = (),
        soft_fraction: float = 0.8,
        prefetch: int = 2,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(
                f"start_method must be 'forkserver' or 'spawn' (fork deadlocks with torch threads), got {start_method!r}"
            )
        if not 0 < soft_fraction <= 1:
            raise ValueError(f"soft_fraction must be in (0, 1], got {soft_fraction!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be an int >= 1, got {prefetch!r}")
        self.num_workers, self.timeout_s, self.retry_crashed = num_workers, float(timeout_s), retry_crashed
        self._prefetch = prefetch
        self._imports = tuple(imports)
        self._budget_s = self.timeout_s * soft_fraction
        self._counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FAILURES, 0))
        self._lock = threading.Lock()
        self._pending: deque[_Task] = deque()
        self._next_id = 0
        self._closed = False  # no new submissions (closed by the user or a failed dispatcher)
        self._shut_down = False  # close() has run
        self._broken: str | None = None
        self._workers: list[_Worker] = []
        self._start_failures = 0
        if num_workers == 0:
            return
        check_supported()
        self._ctx = mp.get_context(start_method)
        self._process_cls = PROCESS_CLASSES[start_method]
        if start_method == "forkserver":  # takes effect if this starts the (process-wide) forkserver
            self._ctx.set_forkserver_preload(["lit_triune.rewards.forkserver_preload", *self._imports])
        self._wake_r, self._wake_w = os.pipe()
        self._workers = [self._spawn() for _ in range(num_workers)]
        _OPEN_POOLS.add(self)
        self._thread = threading.Thread(target=self._dispatch, name="verifier-pool", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- public API
    def submit(
        self,
        response: str,
        reward_model: dict,
        image_size: tuple[int, int] | None = None,
        iou_threshold: float | None = None,
        compat: str | None = None,
    ) -> Future:
        """Queue one sample now (e.g. as soon as its completion is decoded); the Future yields `score()`'s dict."""
        kwargs = {"response": response, "reward_model": reward_model, "image_size": image_size,
                  "iou_threshold": iou_threshold, "compat": compat}  # fmt: skip
        verifier = str(reward_model.get("verifier")) if isinstance(reward_model, dict) else "?"
        future: Future = Future()
        if self.num_workers == 0:
            self._finish(_Task(-1, kwargs, future, verifier), score_sample(**kwargs, budget_s=self._budget_s))
            return future
        with self._lock:
            if self._closed:
                raise RuntimeError(f"VerifierPool is closed{': ' + self._broken if self._broken else ''}")
            self._next_id += 1
            self._pending.append(_Task(self._next_id, kwargs, future, verifier))
        os.write(self._wake_w, b"x")
        return future

    def map(
        self,
        responses: Sequence[str],
        reward_models: Sequence[dict],
        image_sizes: Sequence[tuple[int, int] | None] | None = None,
        iou_threshold: float | None = None,
        compat: str | None = None,
    ) -> list[dict]:
        """Score a batch; results in input order."""
        sizes = batch_image_sizes(responses, reward_models, image_sizes)
        futures = [
            self.submit(r, rm, s, iou_threshold, compat)
            for r, rm, s in zip(responses, reward_models, sizes, strict=True)
        ]
        return [f.result() for f in futures]

    def score_batch(
        self,
        responses: Sequence[str],
        reward_models: Sequence[dict],
        *,
        image_sizes: Sequence[tuple[int, int] | None] | None = None,
        iou_threshold: float | None = None,
        compat: str | None = None,
    ) -> list[dict]:
        """Same signature as `lit_triune.rewards.score_batch`, run through the pool."""
        return self.map(responses, reward_models, image_sizes, iou_threshold, compat)

    def failure_counts(self) -> dict[str, dict[str, int]]:
        """{verifier: {"timeout", "crash", "parse", "spec": count}}; a retried crash still counts once."""
        with self._lock:
            return {name: dict(c) for name, c in self._counts.items()}

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc.is_alive()]

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block until every worker has started and warmed up (benchmarks and tests want a warm pool)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(w.ready for w in self._workers):
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Stop the workers now; samples not yet scored resolve with failure="crash" (not counted)."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = self._closed = True
        _OPEN_POOLS.discard(self)
        if self.num_workers == 0:
            return
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=10)
        for w in self._workers:
            self._stop(w, graceful=not w.tasks)
        leftover = list(self._pending) + [t for w in self._workers for t in w.tasks]
        self._pending.clear()
        for task in leftover:
            self._finish(task, self._crash(task, "pool closed before the sample was scored"), count=False)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ---------------------------------------------------------------- internals
    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._process_cls(target=worker_main, args=(child, self._imports, self._budget_s), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def _stop(self, w: _Worker, graceful: bool = False) -> None:
        if graceful and w.proc.is_alive():
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
            w.proc.join(timeout=1.0)
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join(timeout=5.0)
        w.conn.close()

    def _crash(self, task: _Task, detail: str) -> dict[str, Any]:
        return make_result(task.verifier, 0.0, 0.0, 0.0, "crash", detail)

    def _finish(self, task: _Task, result: dict[str, Any], count: bool = True) -> None:
        failure = result.get("failure")
        if count and failure in FAILURES:
            with self._lock:
                self._counts[task.verifier][failure] += 1
        if not task.future.done():
            task.future.set_result(result)

    def _replace(self, w: _Worker) -> None:
        self._stop(w)
        with self._lock:
            if self._closed:  # closing (or the interpreter exiting): a new worker would only be killed again
                return
        self._workers[self._workers.index(w)] = self._spawn()

    def _lost(self, w: _Worker, why: str) -> None:
        """The worker died or hung: its running sample times out or is retried/failed, queued ones go back,
        and only then is the worker replaced, so callers never wait on a respawn."""
        tasks = list(w.tasks)
        w.tasks.clear()
        if w.proc.is_alive():
            w.proc.kill()
        if tasks:
            head, queued = tasks[0], tasks[1:]
            with self._lock:
                self._pending.extendleft(
                    reversed(queued)
                )  # not their fault: back to the front, attempts unchanged
            if why == "timeout":
                detail = f"killed after the {self.timeout_s:g} s hard timeout"
                self._finish(head, make_result(head.verifier, 0.0, 0.0, 0.0, "timeout", detail))
            else:
                with self._lock:
                    self._counts[head.verifier]["crash"] += 1
                head.attempts += 1
                if self.retry_crashed and head.attempts < 2:
                    with self._lock:
                        self._pending.appendleft(head)
                else:
                    self._finish(
                        head, self._crash(head, f"worker died ({why}) while scoring this sample"), count=False
                    )
        self._replace(w)

    def _dispatch(self) -> None:
        try:
            self._loop()
        except BaseException as err:  # never leave callers waiting on futures forever
            with self._lock:
                self._closed = True
                self._broken = f"dispatcher failed: {type(err).__name__}: {err}"
                tasks = list(self._pending) + [t for w in self._workers for t in w.tasks]
                self._pending.clear()
            for task in tasks:
                self._finish(task, self._crash(task, f"pool dispatcher failed: {type(err).__name__}: {err}"))

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
            self._feed()
            busy = [w.deadline for w in self._workers if w.tasks]
            timeout = max(0.0, min(busy) - time.monotonic()) if busy else None
            objs: list[Any] = [self._wake_r]
            for w in self._workers:
                objs += [w.conn, w.proc.sentinel]
            ready = wait(objs, timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for w in list(self._workers):
                if w.conn in ready:
                    self._receive(w)
                elif w.proc.sentinel in ready and not w.proc.is_alive():
                    self._on_death(w)
            now = time.monotonic()
            for w in list(self._workers):
                if w.tasks and now >= w.deadline:
                    self._lost(w, "timeout")

    def _feed(self) -> None:
        """Top every ready worker up to `prefetch` sent samples."""
        for w in list(self._workers):
            while w.ready and len(w.tasks) < self._prefetch:
                with self._lock:
                    task = self._pending.popleft() if self._pending else None
                if task is None:
                    return
                try:  # pickle here, so an unpicklable spec fails its own sample, not the worker
                    payload = ForkingPickler.dumps((task.id, task.kwargs))
                except Exception as err:
                    detail = f"sample could not be sent to a worker: {type(err).__name__}: {err}"[:500]
                    self._finish(task, make_result(task.verifier, 0.0, 0.0, 0.0, "spec", detail))
                    continue
                if not w.tasks:
                    w.deadline = time.monotonic() + self.timeout_s
                w.tasks.append(task)
                try:
                    w.conn.send_bytes(payload)
                except (OSError, ValueError):
                    self._lost(w, "pipe closed")
                    break

    def _receive(self, w: _Worker) -> None:
        while w.conn.poll():
            try:
                msg = w.conn.recv()
            except (EOFError, OSError):
                self._on_death(w)
                return
            if msg[0] == "log":  # the worker's warnings, log records and stderr lines (worker.py)
                _log.log(msg[1], "verifier worker %s: %s: %s", w.proc.pid, msg[2], msg[3])
            elif msg[0] == "ready":
                w.ready, self._start_failures = True, 0
            elif w.tasks and msg[0] == w.tasks[0].id:
                task = w.tasks.popleft()
                w.deadline = time.monotonic() + self.timeout_s  # the next queued sample starts now
                self._finish(task, msg[1])

    def _on_death(self, w: _Worker) -> None:
        if not w.ready:
            self._start_failures += 1
            if self._start_failures > _MAX_START_FAILURES:
                raise RuntimeError(f"verifier workers keep dying at start-up (exit code {w.proc.exitcode})")
        self._lost(w, f"exit code {w.proc.exitcode}")
