"""lit_triune/models/fsdp2.py and the FSDP2 half of lit_triune/models/sharding.py in one process (a gloo
process group of one rank, so FSDP2 runs its real hooks, all-gathers and reduce-scatters without a second
process): the tiny policy sharded as FSDP2Strategy shards it computes what the unsharded one computes
through calls that are not `policy.forward`, run as one root forward; gradients, the clipped norm and the
unsharded weights match. Two processes: tests/rl/test_fsdp2.py."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch


@pytest.fixture
def group(tmp_path: Path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # 10.7 s here on a loaded machine (FSDP2's first lazy init and DTensor dispatch)
def test_sharded_policy_matches_the_unsharded_one(group, tiny_model_path: Path) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VLDecoderLayer,
        Qwen2_5_VLVisionBlock,
    )

    from lit_triune.models.fsdp2 import shard_policy
    from lit_triune.models.sharding import (
        clip_grad_norm,
        fsdp_root,
        full_parameters,
        in_root_forward,
        is_sharded,
    )
    from lit_triune.rl.policy import load_policy

    reference = load_policy(str(tiny_model_path)).train()
    reference.model.visual.requires_grad_(False)  # a frozen ViT inside the trained root (mixed requires_grad)
    policy = copy.deepcopy(reference)
    blocks = (Qwen2_5_VLDecoderLayer, Qwen2_5_VLVisionBlock)
    shard_policy(policy, init_device_mesh("cpu", (1,)), wrap_classes=blocks, checkpoint_classes=blocks)
    assert isinstance(policy, FSDPModule) and is_sharded(policy) and fsdp_root(policy) is policy
    assert sum(isinstance(m, FSDPModule) for m in policy.modules()) == 1 + sum(
        isinstance(m, blocks) for m in reference.modules())

    ids = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(0))  # [2, 9]
    inside: list[object] = []

    def loss(model: torch.nn.Module) -> torch.Tensor:  # not model.forward: the root's own parameters are used
        inside.append(fsdp_root(model))
        hidden = model.model(input_ids=ids).last_hidden_state  # [2, 9, H]
        return model.lm_head(hidden).float().log_softmax(-1).mean()

    got = in_root_forward(policy, loss)
    assert inside == [None]  # inside its redirected forward the policy is not redirected again
    want = loss(reference)
    assert torch.allclose(got, want, atol=1e-6)
    got.backward()
    want.backward()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    ref_params = dict(reference.named_parameters())
    for name, p in policy.named_parameters():
        ref = ref_params[name.replace("_checkpoint_wrapped_module.", "")]
        assert (p.grad is None) == (ref.grad is None), name  # the frozen ViT gets no gradient
        if p.grad is not None:
            assert torch.allclose(p.grad.full_tensor(), ref.grad, atol=1e-6), name
    norm = clip_grad_norm(policy, trainable, 1e-3)
    ref_norm = float(torch.nn.utils.clip_grad_norm_([p for p in reference.parameters() if p.requires_grad], 1e-3))
    assert norm == pytest.approx(ref_norm, rel=1e-5)
    with full_parameters(SimpleNamespace(strategy=SimpleNamespace(model=policy))):  # a trainer running FSDP2
        whole = {n.replace("_checkpoint_wrapped_module.", ""): p for n, p in policy.named_parameters()}
        assert not any(hasattr(p, "to_local") for p in whole.values())  # plain tensors, not DTensor shards
        for name, p in whole.items():
            assert torch.equal(p, ref_params[name]), name
    assert all(hasattr(p, "to_local") for p in policy.parameters())  # resharded on exit
