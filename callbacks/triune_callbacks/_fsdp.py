"""FSDP lookups the callbacks need, from generic trainer state only (no module specifics).

Both FSDP versions: FSDP1 (`FullyShardedDataParallel`, a wrapper module) and FSDP2 (`fully_shard`, which
makes the sharded module itself an `FSDPModule`; each unit all-gathers only its own parameters)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch


def _fsdp_classes() -> tuple[type, ...]:
    try:
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    except ImportError:  # pragma: no cover - torch builds without distributed
        return ()
    return (FullyShardedDataParallel, FSDPModule)


def fsdp_root_module(trainer: pl.Trainer) -> Any:
    """The outermost FSDP module when the trainer runs FSDP, else None: the strategy's model when
    Lightning wrapped the whole LightningModule, or the first FSDP module inside it when the module
    (or an FSDP2 strategy) sharded a part itself."""
    model = getattr(getattr(trainer, "strategy", None), "model", None)
    classes = _fsdp_classes()
    if model is None or not classes:
        return None
    return next((m for m in model.modules() if isinstance(m, classes)), None)


def full_parameters(trainer: pl.Trainer) -> contextlib.AbstractContextManager:
    """Under FSDP, a context in which every rank sees the whole (unsharded) parameters, read-only —
    an engine on each rank needs all weights, not its shard. Elsewhere a no-op. (FSDP2: in the units'
    `param_dtype`, which is what they compute in.)"""
    root = fsdp_root_module(trainer)
    if root is None:
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    if isinstance(root, FSDPModule):
        return _unsharded([m for m in root.modules() if isinstance(m, FSDPModule)])
    return FullyShardedDataParallel.summon_full_params(root, writeback=False, recurse=True)


@contextlib.contextmanager
def _unsharded(units: list[Any]) -> Iterator[None]:
    with torch.no_grad():
        try:
            for unit in units:
                unit.unshard()
            yield
        finally:
            for unit in reversed(units):
                unit.reshard()


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (an FSDP2 parameter or gradient); any other tensor as it is."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t
