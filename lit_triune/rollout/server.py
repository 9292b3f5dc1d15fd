"""The rollout server: a rollout engine (HF generate or vLLM) in its own process, on other devices or nodes.

    python -m lit_triune.rollout.server --engine vllm --model-path /ckpt --host 0.0.0.0 --port 52100

Trainers talk to it through `lit_triune.rollout.remote.RemoteEngine` (the `RolloutEngine` protocol), on a
control connection (`multiprocessing.connection`, JSON messages: lit_triune/rollout/wire.py) and a weight
group (torch.distributed, gloo or NCCL: lit_triune/rollout/weight_group.py). One thread serves every
connection in arrival order, so the engine never runs two things at once. Messages:

- `hello {rank, engine?}` -> `{pid, store_port, version}`; the first hello that carries an engine
  description builds the engine when the command line gave none (a launched server).
- `join_weights {prefix, backend}`: both sides build the weight group (a new prefix per session).
- `weights {version, meta, bucket_bytes}`: the tensors arrive over the group and are loaded; the server's
  weight version becomes `version`.
- `generate {version, prompts, images, sampling}` -> `{rollout}`: held until the server's weights are at
  least `version` (ranks sharing a server: the pushing rank may push after another rank asks), so a rank
  never samples from weights older than those it synced. Requests ready at once are sampled in one engine
  call when the engine can (`generate_many`: vLLM, each request with its own seeds); a ready request waits up
  to `--batch-window-s` while another connection has none; its connection is not read meanwhile, and a push
  from another connection first samples the held requests, so no request meets weights pushed after it.
- `shutdown`: exit.

The server exits when the process that launched it dies (`--parent-pid`: PR_SET_PDEATHSIG on Linux and a
watchdog), so a killed trainer leaves no orphan holding devices.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import queue
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection, Listener, wait
from pathlib import Path
from typing import Any

import torch

from lit_triune.rollout import weight_group, wire

AUTHKEY_ENV = "LIT_TRIUNE_ROLLOUT_KEY"
ENGINES = ("hf", "vllm")
# Trainer ranks in step send their requests within milliseconds of each other; a GPU rollout takes seconds.
DEFAULT_BATCH_WINDOW_S = 0.05


def build_engine(spec: dict[str, Any]) -> Any:
    """An engine from a plain description `{name: hf|vllm, model_path, dtype, kwargs}` (no class paths: the
    server constructs only these two)."""
    name, path, kwargs = spec["name"], spec.get("model_path"), dict(spec.get("kwargs") or {})
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {name!r}")
    if not path:
        raise ValueError("the rollout server needs a model_path (a checkpoint directory on the server's node)")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from lit_triune.models.paths import resolve_model_path

    path = resolve_model_path(str(path))
    if name == "vllm":
        from lit_triune.rollout.vllm_engine import VLLMEngine

        engine = VLLMEngine(path, **kwargs)
        engine.processor = AutoProcessor.from_pretrained(path)
        return engine
    from lit_triune.rollout.hf_engine import HFGenerateEngine

    dtype = getattr(torch, str(spec.get("dtype") or "float32"))
    device = spec.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).to(device).eval().requires_grad_(False)
    return HFGenerateEngine(model, AutoProcessor.from_pretrained(path), **kwargs)


def load_weights(engine: Any, weights: Any) -> None:
    """Streams (name, tensor) in HF checkpoint naming into the engine; consumes every bucket."""
    try:
        if hasattr(engine, "load_weights"):  # vLLM
            engine.load_weights(weights)
        else:  # HF: the server's own copy of the policy
            params = dict(engine.model.named_parameters(remove_duplicate=False))
            with torch.no_grad():
                for name, tensor in weights:
                    if name not in params:
                        raise KeyError(f"pushed weight {name!r} is not a parameter of the server's model")
                    params[name].copy_(tensor)
    finally:  # whatever the loader left, even after a failure: the broadcast is collective, the pusher waits on it
        for _ in weights:
            pass


def weights_device(engine: Any, backend: str) -> torch.device:
    if weight_group.resolve_backend(backend) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class RolloutServer:
    """Serves `RemoteEngine` connections (the module docstring). `batch_requests`: with an engine that can
    generate several requests in one call (`generate_many`: vLLM), sample the requests ready at once together;
    `batch_window_s`: hold a ready request up to this long while some other connection has none pending (0:
    never held; requests pending at the same moment are still sampled together)."""

    def __init__(self, host: str, port: int, authkey: bytes | None, engine_spec: dict[str, Any] | None,
                 timeout_s: float = 600.0, batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
                 batch_requests: bool = True) -> None:
        if batch_window_s < 0:
            raise ValueError(f"batch_window_s must be >= 0, got {batch_window_s}")
        self.batch_window_s = batch_window_s
        self.batch_requests = batch_requests
        self.held: set[Connection] = set()  # connections whose ready requests wait for the batch window
        self.listener = Listener((host, port), authkey=authkey)
        self.store = weight_group.host_store(host, timeout_s)
        self.timeout_s = timeout_s
        self.engine_spec = engine_spec
        self.engine: Any = None
        self.version = 0
        self.weights_error: str | None = None  # a failed push: no rollout is sampled until one succeeds
        self.group: Any = None
        self.backend = "gloo"
        self.conns: list[Connection] = []
        self.pending: list[tuple[Connection, dict[str, Any], list[bytes], float]] = []
        self.accepted: queue.Queue[Connection] = queue.Queue()
        self.running = True
        threading.Thread(target=self._accept, daemon=True, name="accept").start()

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.address

    def _accept(self) -> None:
        while self.running:
            try:
                self.accepted.put(self.listener.accept())
            except Exception:  # noqa: BLE001 - a client that fails authentication must not stop the server
                if not self.running:
                    return

    def serve(self) -> None:
        while self.running:
            while not self.accepted.empty():
                self.conns.append(self.accepted.get())
            # A connection whose requests are held is not read meanwhile: a weight push sent after them must not
            # be loaded before they are sampled (each connection's messages are served in order).
            readable = [c for c in self.conns if c not in self.held]
            for conn in wait(readable, timeout=0.005 if self.held else 0.1) if readable else []:
                try:
                    header, blobs = wire.recv(conn)
                except (EOFError, OSError):
                    self.conns.remove(conn)
                    self.pending = [p for p in self.pending if p[0] is not conn]
                    continue
                self._handle(conn, header, blobs)
            self._serve_pending()
            if not self.conns and not self.accepted.empty():
                continue
            if not self.conns:
                time.sleep(0.05)
            elif not readable:
                time.sleep(0.002)  # every connection held: the window ends soon

    def _reply(self, conn: Connection, header: dict[str, Any]) -> None:
        try:
            wire.send(conn, header)
        except (OSError, EOFError):
            pass  # the client went away; its connection is dropped on the next read

    def _handle(self, conn: Connection, header: dict[str, Any], blobs: list[bytes]) -> None:
        op, rid = header.get("op"), header.get("id")

        def answer(h: dict[str, Any]) -> None:  # every reply echoes the request's id
            self._reply(conn, {**h, "id": rid})

        try:
            if op == "hello":
                if self.engine is None and self.engine_spec is None and header.get("engine"):
                    self.engine_spec = header["engine"]
                if self.engine is None and self.engine_spec is not None:
                    self.engine = build_engine(self.engine_spec)
                answer({"ok": True, "pid": os.getpid(), "store_port": self.store.port, "version": self.version})
            elif op == "join_weights":
                self.backend = str(header.get("backend", "gloo"))
                answer({"ok": True})
                self.group = weight_group.new_group(self.store, str(header["prefix"]), weight_group.SERVER_RANK,
                                                    self.backend, self.timeout_s)
            elif op == "weights":
                self._need_engine()
                if self.held:  # requests held for the batch window arrived before this push: sample them first
                    self._serve_pending(hold=False)
                weights = weight_group.receive(self.group, header["meta"], int(header["bucket_bytes"]),
                                               weights_device(self.engine, self.backend))
                self.weights_error = f"weight push {header.get('version')} failed"  # until it has loaded
                load_weights(self.engine, weights)
                self.version, self.weights_error = int(header["version"]), None
                answer({"ok": True, "version": self.version})
            elif op == "generate":
                self._need_engine()
                self.pending.append((conn, header, blobs, time.monotonic()))
            elif op == "ping":
                answer({"ok": True, "version": self.version})
            elif op == "shutdown":
                answer({"ok": True})
                self.running = False
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as err:  # noqa: BLE001 - reported to the client, which raises it
            answer({"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=8)})

    def _need_engine(self) -> None:
        if self.engine is None:
            raise RuntimeError("the rollout server has no engine: start it with --engine/--model-path or send one")

    def _serve_pending(self, hold: bool = True) -> None:
        keep, ready, remaining = [], [], []  # waiting for weights; ready to sample; both, in arrival order
        for request in self.pending:
            conn, header, _, since = request
            if self.weights_error is not None:  # the weights are half loaded: sampling them would be silent garbage
                self._reply(conn, {"ok": False, "id": header.get("id"), "error": f"{self.weights_error}; the server "
                                   "samples again after a successful push"})
                continue
            if int(header.get("version", 0)) > self.version:
                if time.monotonic() - since > self.timeout_s:
                    self._reply(conn, {"ok": False, "id": header.get("id"), "error": f"timed out waiting for weight "
                                       f"version {header.get('version')} (server has {self.version})"})
                else:
                    keep.append(request)
                    remaining.append(request)
                continue
            ready.append(request)
            remaining.append(request)
        self.held = {conn for conn, *_ in ready} if hold and self._hold(ready) else set()
        if self.held:
            self.pending = remaining
            return
        self.pending = keep
        if len(ready) > 1 and self._batches():
            self._generate_together(ready)
        else:
            for request in ready:
                self._generate_alone(request)

    def _batches(self) -> bool:
        return self.batch_requests and callable(getattr(self.engine, "generate_many", None))

    def _hold(self, ready: list[tuple[Connection, dict[str, Any], list[bytes], float]]) -> bool:
        """Wait for more requests to sample together: only while some connection has none ready, and for at most
        `batch_window_s` after the oldest ready request arrived."""
        if not ready or self.batch_window_s <= 0 or not self._batches():
            return False
        if len({id(conn) for conn, *_ in ready}) >= len(self.conns):
            return False
        return time.monotonic() - min(since for *_, since in ready) < self.batch_window_s

    def _generate_alone(self, request: tuple[Connection, dict[str, Any], list[bytes], float]) -> None:
        conn, header, blobs, _ = request
        try:
            t0 = time.perf_counter()
            rollout = self.engine.generate(*_generate_arguments(header, blobs))
            rollout.timings["server/generate"] = time.perf_counter() - t0
            self._answer_rollout(conn, header, rollout)
        except Exception as err:  # noqa: BLE001
            self._reply(conn, {"ok": False, "id": header.get("id"), "error": f"{type(err).__name__}: {err}",
                               "traceback": traceback.format_exc(limit=8)})

    def _generate_together(self, ready: list[tuple[Connection, dict[str, Any], list[bytes], float]]) -> None:
        """One engine call for all `ready` requests; any that cannot be decoded, or all of them if the joint call
        fails, are served alone (one bad request must not fail the others)."""
        decoded, alone = [], []
        for request in ready:
            _, header, blobs, _ = request
            try:
                decoded.append((request, _generate_arguments(header, blobs)))
            except Exception:  # noqa: BLE001 - answered with its own error below
                alone.append(request)
        t0 = time.perf_counter()
        try:
            rollouts = self.engine.generate_many([args for _, args in decoded]) if decoded else []
        except Exception:  # noqa: BLE001 - retried one by one, so each request gets its own answer
            rollouts, alone = [], [request for request, _ in decoded] + alone
        took = time.perf_counter() - t0
        for ((conn, header, _, _), _), rollout in zip(decoded, rollouts, strict=False):  # none if the call failed
            rollout.timings["server/generate"] = took
            self._answer_rollout(conn, header, rollout)
        for request in alone:
            self._generate_alone(request)

    def _answer_rollout(self, conn: Connection, header: dict[str, Any], rollout: Any) -> None:
        self._reply(conn, {"ok": True, "id": header.get("id"), "version": self.version,
                           "rollout": wire.rollout_to_dict(rollout)})

    def close(self) -> None:
        self.running = False
        self.listener.close()


def _generate_arguments(header: dict[str, Any], blobs: list[bytes]) -> tuple[list[str], list[Any], Any]:
    """A `generate` request's (prompts, images, sampling), decoded from the wire."""
    return (list(header["prompts"]), wire.decode_images(header["images"], blobs),
            wire.sampling_from_dict(header["sampling"]))


def die_with_parent(parent_pid: int) -> None:
    """Exit when `parent_pid` dies: PR_SET_PDEATHSIG (Linux) and a watchdog thread (elsewhere, or if the
    parent died before the prctl)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
        except OSError:
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(0.5)

    if os.getppid() != parent_pid:
        os._exit(0)
    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def is_loopback(host: str) -> bool:
    """Whether `host` (a listen address) is reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="control port (0: any free port)")
    p.add_argument("--engine", choices=ENGINES, help="none: the first client's description")
    p.add_argument("--model-path")
    p.add_argument("--dtype", default="float32", help="HF engine: the server's copy of the policy")
    p.add_argument("--engine-kwargs", default="{}", help="JSON: HFGenerateEngine / VLLMEngine arguments")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--timeout-s", type=float, default=600.0)
    p.add_argument("--batch-window-s", type=float, default=DEFAULT_BATCH_WINDOW_S,
                   help="vLLM: hold ready requests this long for other connections' to sample them together (0: off)")
    p.add_argument("--no-batch-requests", dest="batch_requests", action="store_false",
                   help="sample every request in its own engine call, even when several are ready at once")
    p.add_argument("--parent-pid", type=int, help="exit when this process dies (set by RemoteEngine's launch)")
    p.add_argument("--ready-file", help="write {port, store_port, pid} here as JSON once listening")
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help=f"listen beyond this machine without {AUTHKEY_ENV} (anyone reaching the port could push weights)")
    args = p.parse_args(argv)
    key = os.environ.get(AUTHKEY_ENV)
    if not key and not is_loopback(args.host) and not args.allow_unauthenticated:
        p.error(f"--host {args.host} listens beyond this machine: set {AUTHKEY_ENV} (the same secret on the trainer "
                "nodes) so only the trainers can connect, or pass --allow-unauthenticated on a network you trust")
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = None
    if args.engine:
        spec = {"name": args.engine, "model_path": args.model_path, "dtype": args.dtype,
                "kwargs": json.loads(args.engine_kwargs)}
    server = RolloutServer(args.host, args.port, key.encode() if key else None, spec, args.timeout_s,
                           args.batch_window_s, args.batch_requests)
    if spec is not None:
        server.engine = build_engine(spec)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    host, port = server.address
    print(f"rollout server pid {os.getpid()} listening on {host}:{port} (weights store port {server.store.port})",
          flush=True)
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_text(json.dumps({"port": port, "store_port": server.store.port, "pid": os.getpid()}))
        tmp.rename(args.ready_file)
    try:
        server.serve()
    finally:
        server.close()


if __name__ == "__main__":
    main()
