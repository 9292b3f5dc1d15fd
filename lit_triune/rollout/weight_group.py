"""A two-member torch.distributed group (rollout server + the trainer rank that pushes weights).

It is built from public `torch.distributed` names only — a `TCPStore` hosted by the server, a
`PrefixStore` per session and a `ProcessGroupGloo` / `ProcessGroupNCCL` constructed on it — so it never
touches Lightning's default process group (`init_process_group` can run once per process, and the server
is no member of the trainer's world). Rank 0 is the server, rank 1 the pushing trainer rank.

Weights go in dtype-homogeneous flat buckets of at most `bucket_bytes`: the names, dtypes and shapes are
sent first on the control connection, so both sides cut the same buckets.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

SERVER_RANK, PUSHER_RANK = 0, 1


def resolve_backend(backend: str) -> str:
    if backend == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"weights_backend must be 'auto', 'gloo' or 'nccl', got {backend!r}")
    return backend


def host_store(host: str, timeout_s: float) -> dist.TCPStore:
    """The server's store, on a free port (`store.port`)."""
    return dist.TCPStore(host, 0, is_master=True, wait_for_workers=False,
                         timeout=datetime.timedelta(seconds=timeout_s))


def join_store(host: str, port: int, timeout_s: float) -> dist.TCPStore:
    return dist.TCPStore(host, port, is_master=False, timeout=datetime.timedelta(seconds=timeout_s))


def new_group(store: dist.Store, prefix: str, rank: int, backend: str, timeout_s: float) -> dist.ProcessGroup:
    """Collective: both members call it with the same prefix (one per session, so a reconnect starts clean)."""
    timeout = datetime.timedelta(seconds=timeout_s)
    prefixed = dist.PrefixStore(f"lit_triune_weights/{prefix}", store)
    if resolve_backend(backend) == "nccl":
        return dist.ProcessGroupNCCL(prefixed, rank, 2)
    return dist.ProcessGroupGloo(prefixed, rank, 2, timeout)


def describe(weights: list[tuple[str, torch.Tensor]]) -> list[list[Any]]:
    return [[name, str(t.dtype).removeprefix("torch."), list(t.shape)] for name, t in weights]


def buckets(meta: list[list[Any]], bucket_bytes: int) -> Iterator[list[int]]:
    """Indices into `meta`, consecutive runs of one dtype up to `bucket_bytes` (one tensor may exceed it)."""
    current: list[int] = []
    size, dtype = 0, None
    for i, (_, dt, shape) in enumerate(meta):
        nbytes = _numel(shape) * _dtype(dt).itemsize
        if current and (dt != dtype or size + nbytes > bucket_bytes):
            yield current
            current, size = [], 0
        current.append(i)
        size, dtype = size + nbytes, dt
    if current:
        yield current


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown tensor dtype {name!r}")
    return dtype


def _broadcast(group: dist.ProcessGroup, flat: torch.Tensor) -> dist.Work:
    opts = dist.BroadcastOptions()
    opts.rootRank = PUSHER_RANK
    return group.broadcast([flat], opts)


class PendingPush:
    """The broadcasts of one push, issued and not yet waited for. Each bucket is a copy (`torch.cat`), so the
    trainer may update its weights while they travel; `wait` keeps the copies alive until then."""

    def __init__(self, sends: list[tuple[dist.Work, torch.Tensor]]) -> None:
        self.sends = sends

    def wait(self, timeout_s: float) -> None:
        for work, _ in self.sends:
            work.wait(datetime.timedelta(seconds=timeout_s))
        self.sends = []


def push(group: dist.ProcessGroup, weights: list[tuple[str, torch.Tensor]], bucket_bytes: int,
         device: torch.device) -> PendingPush:
    """Trainer side: starts broadcasting the tensors (in `describe` order) bucket by bucket and returns at once
    (gloo and NCCL run collectives in the background); `PendingPush.wait` waits for them."""
    meta = describe(weights)
    sends = []
    for idx in buckets(meta, bucket_bytes):
        flat = torch.cat([weights[i][1].detach().reshape(-1).to(device) for i in idx])  # [sum numel]
        sends.append((_broadcast(group, flat), flat))
    return PendingPush(sends)


def receive(group: dist.ProcessGroup, meta: list[list[Any]], bucket_bytes: int,
            device: torch.device) -> Iterator[tuple[str, torch.Tensor]]:
    """Server side: yields (name, tensor) as the buckets arrive (the caller loads them as they come)."""
    for idx in buckets(meta, bucket_bytes):
        dtype = _dtype(meta[idx[0]][1])
        sizes = [_numel(meta[i][2]) for i in idx]
        flat = torch.empty(sum(sizes), dtype=dtype, device=device)  # [sum numel]
        _broadcast(group, flat).wait()
        for i, part in zip(idx, flat.split(sizes), strict=True):
            yield meta[i][0], part.view(meta[i][2])
