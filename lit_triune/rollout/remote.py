"""`RemoteEngine`: the `RolloutEngine` protocol (generate + sync_weights) served by a rollout server process.

The module, the rollout runner and the RolloutCallback see an ordinary engine; behind it the engine (HF
generate or vLLM) runs in `python -m lit_triune.rollout.server` — launched here as a child process
(`launch: true`, one per trainer rank or one shared), or started by hand on another node (`launch: false`,
`host`/`port` of that node). Requests and results travel as JSON on a `multiprocessing.connection`
(lit_triune/rollout/wire.py, nothing unpickled); weights are broadcast over a separate torch.distributed
group, gloo on CPU and NCCL on GPUs (lit_triune/rollout/weight_group.py), never Lightning's.

Several trainer ranks sharing a server (`share: true`): rank 0 pushes the weights, every rank counts its
syncs, and the server holds a rank's `generate` until it holds that many pushes, so no rank samples from
weights older than the ones it synced.

A weight push does not wait for the server: the trainer sends the push's header and starts the broadcast
(of copies of the weights), then goes on; the server takes the push after the requests sent before it,
and every request sent after it is served with the new weights. The next push and the next `generate` wait
for the push's reply first, so a failed push is still raised (the first push after connecting is waited for
at once); a rollout in flight behind a failed push is refused by the server, never sampled from half-loaded
weights. With asynchronous rollouts the trainer
thereby submits the next batch while the server is still generating the current one, and the server
never idles between rollouts.

Losing the server (unreachable at start, or gone mid-run): with `on_server_lost: stop` the run ends with a
`RolloutServerLost` naming the server. A failed weight push is raised at the next `generate`, not in
`on_train_batch_end`, so the checkpoint of the step that just finished is written first. With `retry`, the
engine waits `retry_wait_s`, relaunches (if it launched the server) or reconnects, pushes the weights it
last synced, and repeats the request, up to `retries` times.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_triune.rollout import weight_group, wire
from lit_triune.rollout.base import Rollout, SamplingConfig, policy_checkpoint_path
from lit_triune.rollout.server import AUTHKEY_ENV, DEFAULT_BATCH_WINDOW_S, ENGINES

ON_SERVER_LOST = ("stop", "retry")


class RolloutServerLost(RuntimeError):
    """The rollout server could not be reached or went away; the message names it and says what to do."""


class RolloutServerError(RuntimeError):
    """The server answered with an error (e.g. the engine failed on a request)."""


class _Channel:
    """One control connection: requests carry an id, a reader thread hands each reply to its request's future,
    so a rollout can be in flight (`RemoteEngine.submit`) while the weights are pushed on the same connection.
    The server answers one connection's requests in order."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.futures: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.next_id = 0
        self.error: BaseException | None = None
        self.why = ""
        self.reader = threading.Thread(target=self._read, daemon=True, name="rollout-server-reader")
        self.reader.start()

    def send(self, header: dict[str, Any], blobs: list[bytes] | None = None) -> Future:
        future: Future = Future()
        with self.lock:
            if self.error is not None:
                raise ConnectionError(f"connection lost: {self.why}")
            rid, self.next_id = self.next_id, self.next_id + 1
            self.futures[rid] = future
            wire.send(self.conn, {**header, "id": rid}, blobs)
        return future

    def _read(self) -> None:
        try:
            while True:
                reply, _ = wire.recv(self.conn)
                with self.lock:
                    future = self.futures.pop(int(reply.get("id", -1)), None)
                if future is not None:
                    future.set_result(reply)
        except BaseException as err:  # noqa: BLE001 - EOF / reset: every waiting request fails with it
            why = f"{type(err).__name__}: {err}"
            if isinstance(err, EOFError):
                why = "the server closed the connection"
            elif isinstance(err, ValueError):  # not JSON: the server's authentication challenge, most likely
                why = (f"the server's reply is no lit-triune message ({why}): it probably expects an authkey; set "
                       f"the same {AUTHKEY_ENV} for the server and every trainer rank")
            with self.lock:
                self.error, self.why = err, why
                waiting, self.futures = list(self.futures.values()), {}
            for future in waiting:
                future.set_exception(ConnectionError(f"connection lost: {why}"))

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


def _shared_authkey() -> bytes | None:
    """Rank 0's random key, broadcast over the trainer's process group (a collective: every rank calls it at its
    first connect, in the weight sync at fit start). None outside a process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    box = [secrets.token_hex(32) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return str(box[0]).encode()


def _trainer_rank() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))


class RemoteEngine:
    """A rollout engine in a rollout server process.

    Args:
        engine: "hf" (HFGenerateEngine on the server's own copy of the policy) or "vllm" (VLLMEngine).
        engine_kwargs: that engine's arguments (e.g. vLLM's `max_model_len`, `kv_cache_memory_bytes`).
        model_path: checkpoint the server loads (a path on the server's node); None: the policy's
            `config._name_or_path` at `bind`. A server started by hand with `--engine` uses its own.
        dtype: HF engine: dtype of the server's policy copy.
        host, port: where the server listens. `launch: true` with port 0 picks a free port.
        launch: start the server as a child process of this trainer rank (it dies with the rank).
        share: one server for all trainer ranks (rank 0 launches it on `port` and pushes the weights);
            false: one server per rank (launched per rank, or at `port + rank` when started by hand).
        weights_backend: "auto" (NCCL with CUDA, else gloo), "gloo" or "nccl".
        bucket_mb: size of the flat buckets weights are broadcast in.
        on_server_lost: "stop" (raise `RolloutServerLost`; the run ends, its last checkpoint intact) or
            "retry" (relaunch / reconnect up to `retries` times, `retry_wait_s` apart, re-pushing the weights).
        connect_timeout_s: how long to wait for a server to come up (launch, or a shared server at start).
        request_timeout_s: longest wait for one reply (a generate call included) before the server counts
            as lost.
        threads: torch intra-op threads of a launched server (0: torch's default).
        batch_requests: a launched server samples the requests ready at once (ranks sharing it) in one engine
            call when its engine can (vLLM); false: `--no-batch-requests`, one call per request.
        batch_window_s: a launched server's `--batch-window-s`: with vLLM, how long a rank's ready request may
            wait for the other ranks sharing the server, to be sampled with theirs in one engine call (0: no wait).
        server_env: extra environment variables of a launched server (e.g. CUDA_VISIBLE_DEVICES).
        log_dir: where a launched server writes its log (None: a temporary directory).
    """

    def __init__(
        self,
        engine: str = "hf",
        engine_kwargs: dict[str, Any] | None = None,
        model_path: str | None = None,
        dtype: str = "float32",
        host: str = "127.0.0.1",
        port: int = 0,
        launch: bool = True,
        share: bool = False,
        weights_backend: str = "auto",
        bucket_mb: int = 256,
        on_server_lost: str = "stop",
        retries: int = 3,
        retry_wait_s: float = 5.0,
        connect_timeout_s: float = 300.0,
        request_timeout_s: float = 600.0,
        threads: int = 0,
        batch_requests: bool = True,
        batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
        server_env: dict[str, str] | None = None,
        log_dir: str | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if on_server_lost not in ON_SERVER_LOST:
            raise ValueError(f"on_server_lost must be one of {ON_SERVER_LOST}, got {on_server_lost!r}")
        if batch_window_s < 0:
            raise ValueError(f"batch_window_s must be >= 0, got {batch_window_s}")
        if share and launch and port == 0:
            raise ValueError("a shared server (share: true) launched by rank 0 needs a fixed port, not 0")
        weight_group.resolve_backend(weights_backend)
        self.engine = engine
        self.engine_kwargs = dict(engine_kwargs or {})
        self.model_path = model_path
        self.dtype = dtype
        self.host = host
        self.port = port
        self.launch = launch
        self.share = share
        self.weights_backend = weights_backend
        self.bucket_bytes = int(bucket_mb) << 20
        self.on_server_lost = on_server_lost
        self.retries = retries
        self.retry_wait_s = retry_wait_s
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.threads = threads
        self.batch_requests = batch_requests
        self.batch_window_s = batch_window_s
        self.server_env = dict(server_env or {})
        self.log_dir = log_dir
        self.processor: Any = None
        self.version = 0  # syncs made by this rank; the server's weights must reach it before we sample
        self.reconnects = 0
        self.last_sync_seconds = 0.0
        self._model: nn.Module | None = None
        self._conn: Any = None
        self._group: Any = None
        self._store: Any = None
        self._proc: subprocess.Popen | None = None
        self._server_pid: int | None = None
        self._log_path: Path | None = None
        self._authkey: bytes | None = None
        self._lost: RolloutServerLost | None = None
        self._rank: int | None = None
        self._connected_once = False
        self._connected_pushes = 0  # pushes made on the current connection
        self._pending_push: tuple[Future, weight_group.PendingPush] | None = None  # sent, reply not yet read
        atexit.register(self.close)

    # -- identity --------------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        if self._rank is None:
            self._rank = _trainer_rank()
        return self._rank

    @property
    def pushes(self) -> bool:
        """This rank broadcasts the weights (every rank with its own server; rank 0 of a shared one)."""
        return not self.share or self.rank == 0

    @property
    def launches(self) -> bool:
        return self.launch and self.pushes

    @property
    def address(self) -> str:
        port = self.port if (self.share or self.launch or self.port == 0) else self.port + self.rank
        return f"{self.host}:{port}"

    def describe(self) -> str:
        pid = f", pid {self._server_pid}" if self._server_pid else ""
        log = f", log {self._log_path}" if self._log_path else ""
        return f"rollout server {self.address}{pid}{log}"

    # -- lifecycle -------------------------------------------------------------------------------
    def bind(self, model: nn.Module, processor: Any = None) -> None:
        """RolloutCallback hook: the checkpoint path the server loads, taken from the policy if not given."""
        if processor is not None:
            self.processor = processor
        if self.model_path is None:
            self.model_path = policy_checkpoint_path(model, "RemoteEngine")

    def _spec(self) -> dict[str, Any]:
        return {"name": self.engine, "model_path": self.model_path, "dtype": self.dtype, "kwargs": self.engine_kwargs}

    def _launch(self) -> None:
        log_dir = Path(self.log_dir or tempfile.mkdtemp(prefix="rollout_server_"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = log_dir / f"rollout_server_rank{self.rank}.log"
        ready = log_dir / f"ready_rank{self.rank}_{uuid.uuid4().hex[:8]}.json"
        key = os.environ.get(AUTHKEY_ENV) or (self._authkey.decode() if self._authkey else secrets.token_hex(32))
        self._authkey = key.encode()  # the server, this rank (and, shared, the other ranks) alone know it
        env = {**os.environ, **self.server_env, AUTHKEY_ENV: key}
        env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        cmd = [sys.executable, "-m", "lit_triune.rollout.server", "--host", self.host, "--port", str(self.port),
               "--parent-pid", str(os.getpid()), "--ready-file", str(ready), "--threads", str(self.threads),
               "--timeout-s", str(self.request_timeout_s), "--batch-window-s", str(self.batch_window_s)]
        if not self.batch_requests:
            cmd.append("--no-batch-requests")
        with open(self._log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env)
        self._server_pid = self._proc.pid
        deadline = time.monotonic() + self.connect_timeout_s
        while not ready.exists():
            if self._proc.poll() is not None:
                raise RolloutServerLost(f"{self.describe()} exited with code {self._proc.returncode} while "
                                        f"starting:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise RolloutServerLost(f"{self.describe()} did not start within {self.connect_timeout_s:.0f} s")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        ready.unlink()
        if self.port == 0 or not self.share:
            self.port = int(info["port"])

    def _log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no server log)"
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def _connect(self) -> None:
        """Launches (if this rank launches) and connects; fails with RolloutServerLost."""
        self._pending_push = None  # a push on an earlier connection is lost with it (the caller pushes again)
        if self.share and self._authkey is None and not os.environ.get(AUTHKEY_ENV):
            self._authkey = _shared_authkey()  # first connect of a shared server: every rank is here (fit start)
        if self.launches and (self._proc is None or self._proc.poll() is not None):
            self._launch()
        if self._authkey is None:
            key = os.environ.get(AUTHKEY_ENV)
            self._authkey = key.encode() if key else None
        host, port = self.address.rsplit(":", 1)
        deadline = time.monotonic() + (self.connect_timeout_s if (self.share and not self.pushes) else 0)
        while True:
            try:
                self._conn = _Channel(Client((host, int(port)), authkey=self._authkey))
                break
            except OSError as err:
                if time.monotonic() >= deadline:
                    hint = ("" if self.launch else " (launch: false: start it with `python -m "
                            "lit_triune.rollout.server ...` on that node first, or set launch: true)")
                    raise RolloutServerLost(f"{self.describe()} is unreachable: {err}{hint}") from err
                time.sleep(0.5)
        reply = self._request({"op": "hello", "rank": self.rank, "engine": self._spec()})
        self._server_pid = int(reply["pid"])
        self._connected_once = True
        self._connected_pushes = 0
        self._group = None
        if self.pushes:
            self._store = weight_group.join_store(host, int(reply["store_port"]), self.request_timeout_s)
            prefix = uuid.uuid4().hex
            self._request({"op": "join_weights", "prefix": prefix, "backend": self.weights_backend})
            self._group = weight_group.new_group(self._store, prefix, weight_group.PUSHER_RANK,
                                                 self.weights_backend, self.request_timeout_s)

    def _request(self, header: dict[str, Any], blobs: list[bytes] | None = None) -> dict[str, Any]:
        return self._answer(header["op"], self._conn.send(header, blobs))

    def _answer(self, op: str, future: Future) -> dict[str, Any]:
        reply = future.result(self.request_timeout_s)  # TimeoutError / ConnectionError: the server counts as lost
        if not reply.get("ok"):
            raise RolloutServerError(f"{self.describe()} failed on {op!r}: {reply.get('error')}\n"
                                     f"{reply.get('traceback', '')}")
        return reply

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._group, self._store = None, None, None
        self._pending_push = None

    def close(self) -> None:
        """Stops a server this rank launched (asks, then terminates, then kills) and drops the connection."""
        try:
            self.settle_push()  # the last push's broadcast completes before its group goes away
        except Exception:  # noqa: BLE001 - closing: a lost server is no error here
            pass
        if self._conn is not None and self.launches:
            try:
                self._conn.send({"op": "shutdown"})
            except (OSError, EOFError, ValueError):
                pass
        self._drop_connection()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None

    # -- the protocol ----------------------------------------------------------------------------
    def sync_weights(self, model: nn.Module) -> None:
        """Pushes `model`'s weights (pushing rank) and bumps this rank's weight version."""
        self._model = model
        self.version += 1
        if not self.pushes:
            return
        start = time.perf_counter()
        try:
            self._with_recovery("sync_weights", self._push)
        except RolloutServerLost as err:
            if not self._connected_once:  # never reached it: fail at the start
                raise
            self._lost = err  # raised at the next generate: the step that just ended gets checkpointed first
        self.last_sync_seconds = time.perf_counter() - start

    def _push(self) -> None:
        """Sends the weights and returns without waiting for the server (see the module docstring); the
        previous push is settled first, so at most one is outstanding."""
        from lit_triune.rollout.vllm_engine import checkpoint_weights  # HF checkpoint naming, no vLLM import

        self.settle_push()
        first = not self._connected_pushes
        weights = list(checkpoint_weights(self._model))
        device = (torch.device("cuda", torch.cuda.current_device())
                  if weight_group.resolve_backend(self.weights_backend) == "nccl" else torch.device("cpu"))
        reply = self._conn.send({"op": "weights", "version": self.version, "meta": weight_group.describe(weights),
                                 "bucket_bytes": self.bucket_bytes})
        self._pending_push = (reply, weight_group.push(self._group, weights, self.bucket_bytes, device))
        self._connected_pushes += 1
        if first:  # a wrong checkpoint or a broken group shows at once, not a step later
            self.settle_push()

    def settle_push(self) -> None:
        """Waits for the outstanding weight push (its broadcast and the server's reply); raises if it failed."""
        pending, self._pending_push = self._pending_push, None
        if pending is None:
            return
        reply, sends = pending
        sends.wait(self.request_timeout_s)
        self._answer("weights", reply)

    def generate(self, prompts: list[str], images: list[Any], sampling: SamplingConfig) -> Rollout:
        self._raise_lost()
        header, blobs = self._generate_request(prompts, images, sampling)
        start = time.perf_counter()
        reply = self._with_recovery("generate", lambda: self._request_after_push(header, blobs))
        rollout = wire.rollout_from_dict(reply["rollout"])
        rollout.timings["remote/roundtrip"] = time.perf_counter() - start
        return rollout

    def submit(self, prompts: list[str], images: list[Any], sampling: SamplingConfig) -> InFlightRollout:
        """Sends a generate request and returns at once. The server serves a connection's requests in order, so
        the rollout is sampled with the weights of every push made before this call and of none made after.
        `InFlightRollout.result()` waits for it."""
        self._raise_lost()
        header, blobs = self._generate_request(prompts, images, sampling)
        try:
            if self._conn is None:
                self._with_recovery("submit", lambda: None)
            future = self._conn.send(header, blobs)
        except (OSError, ConnectionError) as err:
            future = Future()
            future.set_exception(ConnectionError(str(err)))
        return InFlightRollout(self, future, prompts, images, sampling)

    def _request_after_push(self, header: dict[str, Any], blobs: list[bytes]) -> dict[str, Any]:
        future = self._conn.send(header, blobs)  # queued behind the outstanding push, so served with its weights
        self.settle_push()
        return self._answer(header["op"], future)

    def _raise_lost(self) -> None:
        if self._lost is not None:
            lost, self._lost = self._lost, None
            raise lost

    def _generate_request(self, prompts: list[str], images: list[Any], sampling: SamplingConfig
                          ) -> tuple[dict[str, Any], list[bytes]]:
        described, blobs = wire.encode_images([None] * len(prompts) if images is None else list(images))
        return ({"op": "generate", "version": self.version, "prompts": list(prompts), "images": described,
                 "sampling": wire.sampling_to_dict(sampling)}, blobs)

    def _with_recovery(self, what: str, call: Any) -> Any:
        attempts = 1 + (self.retries if self.on_server_lost == "retry" else 0)
        for attempt in range(attempts):
            try:
                if self._conn is None:
                    reconnect = self._connected_once
                    self._connect()
                    if reconnect and what != "sync_weights":
                        self._repush()
                return call()
            except RolloutServerError:
                raise
            except (OSError, EOFError, TimeoutError, RuntimeError) as err:
                self._drop_connection()
                if self._proc is not None:
                    try:  # a connection reset by a dying server comes just before its exit
                        self._proc.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        pass
                died = self._proc is not None and self._proc.poll() is not None
                state = f"exited with code {self._proc.returncode}" if died else "stopped answering"
                message = (f"{self.describe()} {state} during {what}: {type(err).__name__}: {err}")
                if attempt + 1 < attempts:
                    print(f"[RemoteEngine] {message}; retry {attempt + 1}/{self.retries} in "
                          f"{self.retry_wait_s:g} s", file=sys.stderr, flush=True)
                    self.reconnects += 1
                    time.sleep(self.retry_wait_s)
                    continue
                advice = ("The run stops here; the checkpoints written so far are intact: resume with "
                          "`fit --ckpt_path last` once the server is back" if self.on_server_lost == "stop" else
                          f"Gave up after {self.retries} retries")
                tail = f"\nserver log tail:\n{self._log_tail()}" if died else ""
                raise RolloutServerLost(f"{message}. {advice} (on_server_lost: {self.on_server_lost}){tail}") from err
        raise AssertionError("unreachable")

    def _repush(self) -> None:
        """After a reconnect: the (possibly new) server gets the weights this rank last synced."""
        if self.pushes and self._model is not None:
            self._push()


class InFlightRollout:
    """A generate request sent with `RemoteEngine.submit`. `wait()` blocks for the reply without any recovery
    (safe from a helper thread); `result()` also recovers from a lost server as `generate` does (the rollout is
    then sampled again, from the weights of the moment, and `regenerated` is True)."""

    def __init__(self, engine: RemoteEngine, future: Future, prompts: list[str], images: list[Any],
                 sampling: SamplingConfig) -> None:
        self.engine, self.future = engine, future
        self.prompts, self.images, self.sampling = prompts, images, sampling
        self.regenerated = False
        self.submitted = time.perf_counter()

    def done(self) -> bool:
        return self.future.done()

    def wait(self) -> Rollout:
        reply = self.engine._answer("generate", self.future)  # after a failed push the server refuses to sample
        rollout = wire.rollout_from_dict(reply["rollout"])
        rollout.timings["remote/in_flight"] = time.perf_counter() - self.submitted
        return rollout

    def result(self) -> Rollout:
        try:
            return self.wait()
        except RolloutServerError:
            raise
        except (OSError, EOFError, TimeoutError, RuntimeError) as err:
            self.engine._drop_connection()
            if self.engine.on_server_lost == "stop":
                raise RolloutServerLost(f"{self.engine.describe()} was lost with a rollout in flight: "
                                        f"{type(err).__name__}: {err}. The run stops here; the checkpoints written "
                                        "so far are intact (on_server_lost: stop)") from err
            print(f"[RemoteEngine] {self.engine.describe()} was lost with a rollout in flight ({type(err).__name__}: "
                  f"{err}); sampling it again", file=sys.stderr, flush=True)
            self.engine.reconnects += 1
            self.regenerated = True
            return self.engine.generate(self.prompts, self.images, self.sampling)
