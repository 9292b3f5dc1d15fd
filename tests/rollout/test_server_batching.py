"""The rollout server samples the ready requests of several connections (trainer ranks sharing it) in one engine
call when its engine can (`generate_many`: vLLM), holding a request up to `batch_window_s` for the others. The
server runs in a thread with a stand-in engine; clients speak the wire protocol directly.

- Two ranks' requests: one engine call, each rank gets its own rollout back.
- A held connection is not read meanwhile: a message sent after the request (a weight push, here a ping) is
  answered after the rollout, so nothing loads between a request and its sampling; a push from another
  connection first samples the held requests.
- One undecodable request, or a joint call that fails, costs only that request: the others are served alone.
- An engine without `generate_many` (HF), or a server with `batch_requests=False`, never holds a request.
"""

from __future__ import annotations

import threading
import time
from multiprocessing.connection import Client
from typing import Any

import pytest
import torch

from lit_triune.rollout import wire
from lit_triune.rollout.base import Rollout, SamplingConfig
from lit_triune.rollout.server import RolloutServer

SAMPLING = wire.sampling_to_dict(SamplingConfig(n=2, max_new_tokens=4, seed=0))


def _rollout(prompts: list[str], sampling: SamplingConfig) -> Rollout:
    g = sampling.n
    n = len(prompts) * g
    return Rollout(prompt_index=torch.arange(len(prompts)).repeat_interleave(g), completion_ids=[[1]] * n,
                   sampling_logprobs=None, texts=[f"{p}#{k}" for p in prompts for k in range(g)],
                   truncated=torch.zeros(n, dtype=torch.bool), spurious_vision_tokens=torch.zeros(n, dtype=torch.long))


class _OneAtATime:
    """Answers each prompt with its own text and records every engine call's prompts, per request."""

    def __init__(self) -> None:
        self.calls: list[list[list[str]]] = []

    def generate(self, prompts: list[str], images: list[Any], sampling: SamplingConfig) -> Rollout:
        if "boom" in prompts:
            raise RuntimeError("the engine failed on 'boom'")
        self.calls.append([list(prompts)])
        return _rollout(prompts, sampling)


class _Batching(_OneAtATime):
    def generate_many(self, requests: list[tuple[list[str], list[Any], SamplingConfig]]) -> list[Rollout]:
        if any("boom" in prompts for prompts, _, _ in requests):
            raise RuntimeError("the joint call failed")
        self.calls.append([list(prompts) for prompts, _, _ in requests])
        return [_rollout(prompts, sampling) for prompts, _, sampling in requests]


@pytest.fixture
def serve():
    servers: list[RolloutServer] = []

    def start(engine: Any, window: float, clients: int, batch_requests: bool = True) -> list[Any]:
        server = RolloutServer("127.0.0.1", 0, None, None, timeout_s=30.0, batch_window_s=window,
                               batch_requests=batch_requests)
        server.engine = engine
        servers.append(server)
        threading.Thread(target=server.serve, daemon=True, name="test-rollout-server").start()
        conns = [Client(server.address) for _ in range(clients)]
        deadline = time.monotonic() + 10
        while len(server.conns) < clients:  # the server knows every client before the test sends anything
            assert time.monotonic() < deadline, "the server did not register its clients"
            time.sleep(0.01)
        return conns

    yield start
    for server in servers:
        server.running = False
        server.close()


def _generate(conn: Any, rid: int, prompts: list[str], images: list[Any] | None = None) -> None:
    described, blobs = wire.encode_images(images or [None] * len(prompts))
    wire.send(conn, {"op": "generate", "id": rid, "version": 0, "prompts": prompts, "images": described,
                     "sampling": SAMPLING}, blobs)


def _texts(conn: Any) -> list[str]:
    reply, _ = wire.recv(conn)
    assert reply["ok"], reply
    return wire.rollout_from_dict(reply["rollout"]).texts


def test_two_ranks_requests_are_sampled_in_one_call(serve) -> None:
    engine = _Batching()
    rank0, rank1 = serve(engine, window=10.0, clients=2)
    _generate(rank0, 0, ["a", "b"])
    time.sleep(0.2)  # rank 1 is late: rank 0's request waits for it (the window is long)
    _generate(rank1, 0, ["c"])
    assert _texts(rank0) == ["a#0", "a#1", "b#0", "b#1"]
    assert _texts(rank1) == ["c#0", "c#1"]
    assert engine.calls == [[["a", "b"], ["c"]]]


def test_a_held_connection_is_not_read_until_its_request_is_served(serve) -> None:
    engine = _Batching()
    rank0, _idle = serve(engine, window=0.3, clients=2)
    t0 = time.monotonic()
    _generate(rank0, 0, ["a"])
    wire.send(rank0, {"op": "ping", "id": 1})  # stands for a weight push sent after the request
    first, _ = wire.recv(rank0)
    second, _ = wire.recv(rank0)
    assert (first["id"], second["id"]) == (0, 1) and "rollout" in first
    assert time.monotonic() - t0 >= 0.3  # held for the window: the other connection never asked
    assert engine.calls == [[["a"]]]


def test_a_push_from_another_rank_first_samples_the_held_requests(serve) -> None:
    """Rank 1's request waits for rank 0's; rank 0 pushes instead (here a push the server cannot take: no weight
    group was joined). The held request is sampled before the push is handled, with the weights it was sent
    under, not after the window."""
    engine = _Batching()
    rank0, rank1 = serve(engine, window=10.0, clients=2)
    t0 = time.monotonic()
    _generate(rank1, 0, ["a"])
    time.sleep(0.2)  # held: rank 0 has asked for nothing
    wire.send(rank0, {"op": "weights", "id": 0, "version": 1, "meta": [], "bucket_bytes": 1})
    assert _texts(rank1) == ["a#0", "a#1"]
    assert time.monotonic() - t0 < 5.0  # not the 10 s window
    push, _ = wire.recv(rank0)
    assert not push["ok"]  # the stand-in server has no weight group; what matters is the order above
    assert engine.calls == [[["a"]]]


def test_a_bad_request_or_a_failed_joint_call_costs_only_that_request(serve) -> None:
    engine = _Batching()
    rank0, rank1, rank2 = serve(engine, window=10.0, clients=3)
    described = [{"mode": "no-such-mode", "size": [1, 1], "blob": 0}]
    wire.send(rank0, {"op": "generate", "id": 0, "version": 0, "prompts": ["x"], "images": described,
                      "sampling": SAMPLING}, [b"\0"])
    _generate(rank1, 0, ["boom"])
    _generate(rank2, 0, ["ok"])
    bad, _ = wire.recv(rank0)
    assert not bad["ok"] and "no-such-mode" in bad["error"]
    failed, _ = wire.recv(rank1)
    assert not failed["ok"] and "boom" in failed["error"]
    assert _texts(rank2) == ["ok#0", "ok#1"]
    assert engine.calls == [[["ok"]]]  # the joint call failed; "ok" was then generated alone


@pytest.mark.parametrize("engine, batch_requests", [(_OneAtATime(), True), (_Batching(), False)],
                         ids=["engine-without-generate_many", "batch_requests-off"])
def test_no_request_is_held_without_batching(serve, engine, batch_requests: bool) -> None:
    rank0, _idle = serve(engine, window=10.0, clients=2, batch_requests=batch_requests)
    t0 = time.monotonic()
    _generate(rank0, 0, ["a"])
    assert _texts(rank0) == ["a#0", "a#1"]
    assert time.monotonic() - t0 < 5.0  # not the 10 s window
    assert engine.calls == [[["a"]]]


def test_window_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="batch_window_s"):
        RolloutServer("127.0.0.1", 0, None, None, batch_window_s=-1.0)
