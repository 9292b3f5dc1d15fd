"""FSDP lookups the callbacks need, from generic trainer state only (no module specifics)."""

from __future__ import annotations

import contextlib
from typing import Any

import lightning.pytorch as pl


def fsdp_root_module(trainer: pl.Trainer) -> Any:
    """The outermost FSDP module when the trainer runs FSDP, else None: the strategy's model when
    Lightning wrapped the whole LightningModule, or the first FSDP module inside it when the module
    wrapped a part itself in ``configure_model``."""
    model = getattr(getattr(trainer, "strategy", None), "model", None)
    if model is None:
        return None
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # pragma: no cover - torch builds without distributed
        return None
    return next((m for m in model.modules() if isinstance(m, FullyShardedDataParallel)), None)


def full_parameters(trainer: pl.Trainer) -> contextlib.AbstractContextManager:
    """Under FSDP, a context in which every rank sees the whole (unsharded) parameters, read-only —
    an engine on each rank needs all weights, not its shard. Elsewhere a no-op."""
    root = fsdp_root_module(trainer)
    if root is None:
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(root, writeback=False, recurse=True)
