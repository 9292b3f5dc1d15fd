"""Collectives the trainer needs under DDP; each is a no-op outside an initialised process group."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def on_all_ranks(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True only if `flag` holds on every rank (one all-reduce), so all ranks take the same branch."""
    if _world() == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (one all_gather_object); `[obj]` in a single process."""
    if _world() == 1:
        return [obj]
    out: list[Any] = [None] * _world()
    dist.all_gather_object(out, obj)
    return out


def max_over_ranks(value: int, device: torch.device | str = "cpu") -> int:
    """The largest `value` over the ranks (one all-reduce); `value` in a single process."""
    if _world() == 1:
        return int(value)
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())
