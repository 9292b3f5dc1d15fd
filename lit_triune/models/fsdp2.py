"""FSDP2 (`torch.distributed.fsdp.fully_shard`) for the policy, as a Lightning strategy.

    strategy:
      class_path: lit_triune.models.fsdp2.FSDP2Strategy
      init_args:
        wrap_classes: [...Qwen2_5_VLDecoderLayer, ...Qwen2_5_VLVisionBlock]   # one FSDP unit each
        activation_checkpointing: [...Qwen2_5_VLDecoderLayer, ...Qwen2_5_VLVisionBlock]
        param_dtype: bfloat16      # all-gathered and computed in bf16; the fp32 shards stay the master weights
        reduce_dtype: float32      # gradients reduce-scattered in fp32

`FSDP2Strategy` is Lightning's `ModelParallelStrategy` (which runs FSDP2 and saves/loads with
`torch.distributed.checkpoint`, sharded or full) with the wrapping in the strategy instead of the
LightningModule, like FSDP1's `FSDPStrategy(auto_wrap_policy=...)`: after `configure_model` built the
module, `setup` takes its `module_attribute` (the policy), checkpoints the `activation_checkpointing`
blocks (non-reentrant `checkpoint_wrapper`, as Lightning's FSDP1 strategy does), `fully_shard`s every
`wrap_classes` block and then the policy itself as the root, over a 1-D mesh of all ranks (pure data
parallel: every rank its own batches, `data_parallel_size` = world size). Only the policy is sharded; a
reference policy stays whole on each rank, as under FSDP1.

Why the policy and not the LightningModule as the root: every computation with the policy runs inside its
root forward (lit_triune/models/sharding.py), which is how the root's own parameters (embeddings, LM head,
norms, ViT patch embedding and merger) get gathered for calls that are not `policy.forward` (image
features, log-probs through `model.model`, HF `generate`).

On CPU (tests, gloo) nothing changes: ModelParallelStrategy accepts a CPU accelerator, and FSDP2 takes the
mesh's device. Mixed `requires_grad` within a unit is allowed (a frozen ViT inside the trained root),
and a change of `requires_grad` after sharding reaches the gathered parameters at the next unshard
(`FSDPParam.to_unsharded`), so the warm-start -> RL freeze switch needs nothing extra.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import torch
from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn


def import_class(path: str | type) -> type:
    """`a.b.C` -> the class C of module a.b (a class passes through)."""
    if isinstance(path, type):
        return path
    module, _, name = str(path).rpartition(".")
    return getattr(importlib.import_module(module), name)


def _dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    if name is None or isinstance(name, torch.dtype):
        return name
    return getattr(torch, str(name).removeprefix("torch."))


def shard_policy(policy: nn.Module, mesh: Any, *, wrap_classes: Sequence[type] = (),
                 checkpoint_classes: Sequence[type] = (), param_dtype: torch.dtype | None = None,
                 reduce_dtype: torch.dtype | None = None, reshard_after_forward: bool = True) -> nn.Module:
    """`policy` sharded in place with FSDP2 over the 1-D `mesh`: activation checkpointing wrappers on the
    `checkpoint_classes` blocks, one `fully_shard` unit per `wrap_classes` block, then the policy as root.
    Returns the same module (its class is now an `FSDPModule` subclass)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        CheckpointWrapper,
        apply_activation_checkpointing,
        checkpoint_wrapper,
    )
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    wrap, ckpt = tuple(wrap_classes), tuple(checkpoint_classes)
    if ckpt:
        apply_activation_checkpointing(
            policy, checkpoint_wrapper_fn=functools.partial(checkpoint_wrapper, checkpoint_impl=CheckpointImpl.NO_REENTRANT),
            check_fn=lambda m: isinstance(m, ckpt))
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    kwargs = {"mesh": mesh, "mp_policy": mp, "reshard_after_forward": reshard_after_forward}
    # a checkpointed block is sharded as its wrapper: FSDP's hooks then run outside the recomputed region
    wrapper_of = {id(m._checkpoint_wrapped_module): m for m in policy.modules() if isinstance(m, CheckpointWrapper)}
    for block in [wrapper_of.get(id(m), m) for m in policy.modules() if wrap and isinstance(m, wrap)]:
        fully_shard(block, **kwargs)
    fully_shard(policy, **kwargs)
    return policy


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's `ModelParallelStrategy` (FSDP2) with the policy's wrapping done by the strategy.

    Args:
        wrap_classes: block classes (or their import paths) that become their own FSDP unit each; the
            rest of the policy (embeddings, LM head, norms, ViT patch embedding and merger) is the root unit.
        activation_checkpointing: block classes (or import paths) whose activations are recomputed in the
            backward (non-reentrant; the shared-prefix update needs autograd inside the checkpoint).
        param_dtype: dtype the parameters are all-gathered and computed in (e.g. "bfloat16"); None = their own
            (fp32 on CPU). The sharded parameters, gradients and optimizer state keep the module's dtype.
        reduce_dtype: dtype of the gradient reduce-scatter (e.g. "float32"); None = `param_dtype`.
        reshard_after_forward: free each block's gathered parameters after its forward (FULL_SHARD / ZeRO-3);
            False keeps them to the backward (SHARD_GRAD_OP / ZeRO-2). The root never reshards after forward.
        module_attribute: the LightningModule attribute holding the policy to shard.
        save_distributed_checkpoint: True: a directory with one shard file per rank (conf/orsta.yaml, verl);
            False: full weights and optimizer states gathered to rank 0 into one file.
        process_group_backend: "nccl" on GPU by default; "gloo" for CPU processes.
        timeout: process-group timeout.
    """

    strategy_name = "fsdp2"

    def __init__(
        self,
        wrap_classes: Sequence[str | type] = (),
        activation_checkpointing: Sequence[str | type] = (),
        param_dtype: str | None = None,
        reduce_dtype: str | None = None,
        reshard_after_forward: bool = True,
        module_attribute: str = "policy",
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ) -> None:
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1,
                         save_distributed_checkpoint=save_distributed_checkpoint,
                         process_group_backend=process_group_backend, timeout=timeout)
        self.wrap_classes = tuple(import_class(c) for c in wrap_classes)
        self.checkpoint_classes = tuple(import_class(c) for c in activation_checkpointing)
        self.param_dtype, self.reduce_dtype = _dtype(param_dtype), _dtype(reduce_dtype)
        self.reshard_after_forward = reshard_after_forward
        self.module_attribute = module_attribute

    def setup_environment(self) -> None:
        # pure data parallel: one mesh dimension over every rank (ModelParallelStrategy's "auto" would make
        # it the node count and put the GPUs of a node on a tensor-parallel dimension we do not use)
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def setup(self, trainer: Any) -> None:
        module = self.lightning_module
        policy = getattr(module, self.module_attribute, None)
        if not isinstance(policy, nn.Module):
            raise TypeError(f"FSDP2Strategy: the LightningModule has no module `{self.module_attribute}` to shard "
                            "after configure_model()")
        from torch.distributed.fsdp import FSDPModule

        if not isinstance(policy, FSDPModule):  # a second fit/validate on the same module: already sharded
            shard_policy(policy, self.device_mesh["data_parallel"], wrap_classes=self.wrap_classes,
                         checkpoint_classes=self.checkpoint_classes, param_dtype=self.param_dtype,
                         reduce_dtype=self.reduce_dtype, reshard_after_forward=self.reshard_after_forward)
        super().setup(trainer)
