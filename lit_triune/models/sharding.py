"""FSDP: the policy is its own FSDP root, and every computation with it runs inside that root's forward.

Both FSDP versions: FSDP1 (`FullyShardedDataParallel`, a wrapper module; Lightning's `FSDPStrategy`) and
FSDP2 (`fully_shard`, which turns the policy itself into an `FSDPModule`; lit_triune/models/fsdp2.py).
The FSDP1 story first:

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

FSDP2 has the same need: `fully_shard` gathers a unit's parameters in its forward pre-hook, so a call that
is not `policy.forward` (`model.model(...)`, `get_image_features`, HF `generate`'s own use of the
embeddings) would find the root's parameters still sharded (DTensors). The same redirection runs it as one
root forward; since the FSDP2 root *is* the policy (no wrapper), `fsdp_root` answers None for a policy
whose redirected forward is running, so code that checks it (`completion_logprobs`, `image_features`) runs
plainly inside instead of redirecting again; `is_sharded` answers the other question (is this policy
sharded at all), e.g. for `no_grad` instead of `inference_mode` around generation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

T = TypeVar("T")
_IN_ROOT_FORWARD: set[int] = set()  # ids of FSDP2 roots whose redirected forward is running (in_root_forward)


def is_fsdp1(model: Any) -> bool:
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # pragma: no cover - torch builds without distributed
        return False
    return isinstance(model, FullyShardedDataParallel)


def is_fsdp2(model: Any) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, FSDPModule)


def is_sharded(model: Any) -> bool:
    """Whether `model` is an FSDP root (FSDP1 wrapper or FSDP2 module), inside its forward or not."""
    return is_fsdp1(model) or is_fsdp2(model)


def fsdp_root(model: Any) -> nn.Module | None:
    """`model` if a computation with it must run as its FSDP root's forward (`in_root_forward`): an FSDP1
    wrapper, or an FSDP2 module whose redirected forward is not already running; else None."""
    if is_fsdp1(model) or (is_fsdp2(model) and id(model) not in _IN_ROOT_FORWARD):
        return model
    return None


def trainer_fsdp_root(trainer: Any) -> nn.Module | None:
    """The outermost FSDP module of a trainer's model when it runs FSDP, else None: the policy, which
    `TriuneModule.configure_model` wraps as its own root (or the whole module had Lightning wrapped it)."""
    model = getattr(getattr(trainer, "strategy", None), "model", None)
    if model is None:
        return None
    return next((m for m in model.modules() if is_sharded(m)), None)


def full_parameters(trainer: Any) -> contextlib.AbstractContextManager:
    """Under FSDP, a context in which every rank sees the whole (unsharded) parameters, read-only: an
    engine on each rank needs all weights, not its shard. Elsewhere a no-op. FSDP2: every unit of the
    root is unsharded (all-gathered in the units' `param_dtype`: bf16 under conf/orsta.yaml, what the vLLM
    engine runs in) and resharded on exit; `named_parameters()` then yields plain whole tensors."""
    root = trainer_fsdp_root(trainer)
    if root is None:
        return contextlib.nullcontext()
    if is_fsdp2(root):
        return _fsdp2_unsharded(root)
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(root, writeback=False, recurse=True)


@contextlib.contextmanager
def _fsdp2_unsharded(root: nn.Module) -> Iterator[None]:
    units = [m for m in root.modules() if is_fsdp2(m)]  # the root first; every rank has the same units
    with torch.no_grad():
        try:
            for unit in units:
                unit.unshard()
            yield
        finally:
            for unit in reversed(units):
                unit.reshard()


def clip_grad_norm(root: nn.Module, params: list[nn.Parameter], max_norm: float) -> float:
    """Clips the sharded gradients of FSDP root `root` to a total 2-norm of `max_norm`; returns the norm
    before clipping, the same on every rank (a collective). FSDP1: the root's own `clip_grad_norm_` (all
    the root's gradients). FSDP2: `params` (the optimizer's parameters with a gradient, DTensors), their
    shards' norms all-reduced into the whole norm."""
    if is_fsdp1(root):
        return float(root.clip_grad_norm_(max_norm))
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total = torch.nn.utils.get_total_norm(grads, 2.0)
    full_tensor = getattr(total, "full_tensor", None)
    total = full_tensor() if full_tensor is not None else total  # the shards' partial norms, all-reduced
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return float(total)


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
    fsdp2 = is_fsdp2(root)
    inner = root if fsdp2 else root.module  # FSDP2 shards the policy in place: no wrapper
    box: list[Any] = []

    def redirected(*_unused: Any, **_unused_kw: Any) -> Tensor | None:
        del inner.forward  # the class's forward again, for anything fn calls
        box.append(fn(inner, *args, **kwargs))
        if fsdp2:  # FSDP2 hooks the tensors anywhere in the output (a pytree); other objects pass through
            return box[0]
        return box[0] if isinstance(box[0], Tensor) else None  # only tensors go through FSDP1's output hooks

    inner.forward = redirected
    if fsdp2:
        _IN_ROOT_FORWARD.add(id(root))
    try:
        root()
    finally:
        inner.__dict__.pop("forward", None)
        _IN_ROOT_FORWARD.discard(id(root))
    return box[0]
