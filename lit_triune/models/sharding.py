"""FSDP: the policy is its own FSDP root, and every computation with it runs inside that root's forward.

Why not Lightning's default (the whole LightningModule wrapped as the root): under manual optimization
`training_step` *is* the root's forward, so each `manual_backward` runs while the root is still in its
forward, and FSDP's backward hooks fail on the root's own parameters ("Expects BACKWARD_PRE or
BACKWARD_POST state but got HandleTrainingState.FORWARD"; Lightning issues #19626 / #19685, open).
So `TriuneModule.configure_model` wraps the policy itself (`torch.distributed.fsdp.wrap.wrap`, which
uses the strategy's settings — auto-wrap policy, mixed precision, sharding — and is a no-op outside
FSDP), Lightning then leaves the LightningModule unwrapped, and the code below runs each piece of work
that touches the policy's parameters (log-probs, vision features, generation) as one complete root
forward: the root gathers its own parameters (embeddings, LM head, norms, merger) for the call,
the nested units (decoder layers, ViT blocks) gather theirs as they run, and when the call returns
FSDP registers its backward hooks on the output, so a backward afterwards is a normal FSDP backward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from torch import Tensor, nn

T = TypeVar("T")


def fsdp_root(model: Any) -> nn.Module | None:
    """`model` if it is an FSDP-wrapped module (FSDP1), else None."""
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # pragma: no cover - torch builds without distributed
        return None
    return model if isinstance(model, FullyShardedDataParallel) else None


def trainer_fsdp_root(trainer: Any) -> nn.Module | None:
    """The outermost FSDP module of a trainer's model when it runs FSDP, else None: the policy, which
    `TriuneModule.configure_model` wraps as its own root (or the whole module had Lightning wrapped it)."""
    model = getattr(getattr(trainer, "strategy", None), "model", None)
    if model is None:
        return None
    return next((m for m in model.modules() if fsdp_root(m) is not None), None)


def full_parameters(trainer: Any) -> contextlib.AbstractContextManager:
    """Under FSDP, a context in which every rank sees the whole (unsharded) parameters, read-only: an
    engine on each rank needs all weights, not its shard. Elsewhere a no-op."""
    root = trainer_fsdp_root(trainer)
    if root is None:
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(root, writeback=False, recurse=True)


def in_root_forward(model: Any, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(inner, *args, **kwargs)` run inside the FSDP root `model`'s forward, where `inner` is the
    wrapped HF model; without FSDP simply `fn(model, *args, **kwargs)`.

    The root's forward is redirected to `fn` for one call (Lightning's `_ForwardRedirection` does the
    same for `training_step`); the real forward is put back before `fn` runs, so `fn` may call it
    (HF `generate` does). A tensor result gets FSDP's pre-backward hook, so `result.backward()` works
    after this returns; other results come back untouched.
    """
    root = fsdp_root(model)
    if root is None:
        return fn(model, *args, **kwargs)
    inner = root.module
    box: list[Any] = []

    def redirected(*_unused: Any, **_unused_kw: Any) -> Tensor | None:
        del inner.forward  # the class's forward again, for anything fn calls
        box.append(fn(inner, *args, **kwargs))
        return box[0] if isinstance(box[0], Tensor) else None  # only tensors go through FSDP's output hooks

    inner.forward = redirected
    try:
        root()
    finally:
        inner.__dict__.pop("forward", None)
    return box[0]
