"""The dry run's arithmetic (lit_triune/models/memory_plan.py) against allocations measured on CPU.

Model: the public Qwen2.5-VL-7B config at test size (same architecture code and GQA, 2 layers, width
256, vocabulary 2048). Parameter, gradient and AdamW bytes must match exactly (one process, and FSDP1
on a fake process group of 2 and 8 ranks; FSDP2's parameter and AdamW shards likewise); the activations one micro-batch keeps for its backward are
measured with torch's CPU memory accounting (the profiler's allocation records, summed over the forward)
and must be within 10 % of the plan, with and without activation checkpointing, in fp32, in bf16 (the
FSDP bf16 param_dtype case) and under CPU autocast (bf16-mixed without FSDP).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from lit_triune.models import memory_plan as mp

H, HEADS, KV, LAYERS, INTER, VOCAB = 256, 8, 2, 2, 512, 2048
IMAGE_TOKEN, VISION_START, VISION_END = VOCAB - 3, VOCAB - 5, VOCAB - 4


def _test_config():
    from transformers import Qwen2_5_VLConfig

    raw = json.loads((mp.REAL_CONFIGS / "Qwen2.5-VL-7B-Instruct.json").read_text())
    raw.update(hidden_size=H, num_attention_heads=HEADS, num_key_value_heads=KV, num_hidden_layers=LAYERS,
               intermediate_size=INTER, vocab_size=VOCAB, image_token_id=IMAGE_TOKEN, video_token_id=VOCAB - 2,
               vision_start_token_id=VISION_START, vision_end_token_id=VISION_END, bos_token_id=VOCAB - 1,
               eos_token_id=VOCAB - 1,
               rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]})  # head_dim 32
    raw["vision_config"].update(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=H,
                                fullatt_block_indexes=[1])
    return Qwen2_5_VLConfig.from_dict(raw)


@pytest.fixture(scope="module")
def config():
    return _test_config()


def _model(config, dtype=torch.float32):
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).to(dtype).train()
    model.model.visual.requires_grad_(False)
    return model


def test_real_configs_have_the_published_sizes():
    sizes = {}
    for name in mp.real_config_names():
        config, _ = mp.load_config("unused", name)
        model = mp.meta_policy(config)
        sizes[name] = sum(p.numel() for p in model.parameters())
    # Qwen2.5-VL model cards: 3.75 B, 8.29 B, 33.5 B parameters
    assert sizes == {"Qwen2.5-VL-3B-Instruct": 3_754_622_976, "Qwen2.5-VL-7B-Instruct": 8_292_166_656,
                     "Qwen2.5-VL-32B-Instruct": 33_448_292_352}
    assert mp.load_config("/ckpt/Qwen2.5-VL-7B-Instruct")[0].text_config.num_key_value_heads == 4
    with pytest.raises(ValueError, match="cannot tell the architecture"):
        mp.load_config("/ckpt/my-policy")


def test_single_device_parameters_gradients_and_adamw_bytes_exactly(config):
    model = _model(config)
    frozen = {id(p) for p in model.model.visual.parameters()}
    plan = mp.state_bytes(model, frozen, fsdp_wrap=None, world=1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    ids = torch.randint(0, VOCAB - 8, (2, 8))
    model(input_ids=ids).logits.float().mean().backward()
    opt.step()
    params = sum(p.nbytes for p in model.parameters())
    grads = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    states = sum(t.nbytes for s in opt.state.values() for t in s.values())
    assert (plan.params, plan.grads, plan.optimizer) == (params, grads, states)


@pytest.mark.parametrize("world", [2, 8])
def test_fsdp_shards_match_torch_fsdp_on_a_fake_process_group(config, world):
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    from torch.testing._internal.distributed.fake_pg import FakeStore
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VLDecoderLayer,
        Qwen2_5_VLVisionBlock,
    )

    wrap = (Qwen2_5_VLDecoderLayer, Qwen2_5_VLVisionBlock)
    planned = _model(config)
    plan = mp.state_bytes(planned, {id(p) for p in planned.model.visual.parameters()}, fsdp_wrap=wrap, world=world)
    local_trainable = []
    for rank in range(world):
        dist.init_process_group("fake", rank=rank, world_size=world, store=FakeStore())
        try:
            model = _model(config)
            fsdp = FullyShardedDataParallel(
                model, auto_wrap_policy=ModuleWrapPolicy(set(wrap)), use_orig_params=True, device_id=torch.device("cpu"),
                mixed_precision=MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16,
                                               buffer_dtype=torch.bfloat16))
            # read-only look at FSDP1's flat parameters (after init each holds this rank's padded shard)
            flats = [m._handle.flat_param for m in FullyShardedDataParallel.fsdp_modules(fsdp) if m._handle]
            assert plan.params == sum(f.nbytes for f in flats)
            assert plan.grads == sum(f.nbytes for f in flats if f.requires_grad)
            local_trainable.append(sum(p.numel() for p in fsdp.parameters() if p.requires_grad))
        finally:
            dist.destroy_process_group()
    assert plan.trainable_local == max(local_trainable)


@pytest.mark.parametrize("world", [2, 8])
def test_fsdp2_shards_match_fully_shard_on_a_fake_process_group(config, world):
    """FSDP2 (lit_triune/models/fsdp2.py's `shard_policy`, what FSDP2Strategy applies): every rank's padded
    dim-0 parameter shards are the plan's parameter bytes, and the largest rank's trainable elements (what
    AdamW's states are the size of) the plan's; `world` ranks of a fake process group, one at a time."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VLDecoderLayer,
        Qwen2_5_VLVisionBlock,
    )

    from lit_triune.models.fsdp2 import shard_policy

    wrap = (Qwen2_5_VLDecoderLayer, Qwen2_5_VLVisionBlock)
    planned = _model(config)
    frozen = {id(p) for p in planned.model.visual.parameters()}
    plan = mp.state_bytes(planned, frozen, fsdp_wrap=wrap, world=world, fsdp_version=2, mixed_bytes=2, reduce_bytes=4)
    local_trainable = []
    for rank in range(world):
        dist.init_process_group("fake", rank=rank, world_size=world, store=FakeStore())
        try:
            model = _model(config)
            shard_policy(model, init_device_mesh("cpu", (world,)), wrap_classes=wrap, checkpoint_classes=wrap,
                         param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            locals_ = [p.to_local() for p in model.parameters()]
            storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in locals_}
            assert len(storages) == len(locals_)  # one padded buffer per parameter
            assert plan.params == sum(storages.values())
            local_trainable.append(sum(p.to_local().numel() for p in model.parameters() if p.requires_grad))
        finally:
            dist.destroy_process_group()
    assert plan.trainable_local == max(local_trainable) == local_trainable[0]
    assert plan.sync_gathered == world * plan.params // 4 * 2  # every unit all-gathered, in bf16


def _inputs(model, prompt_lengths, completion_lengths, group):
    """Image prompts of unequal lengths (the padded, masked case real batches are), `group` rows each."""
    from lit_triune.models.policy_inputs import EncodedPrompts, build_policy_inputs

    gen = torch.Generator().manual_seed(0)
    grid = torch.tensor([[1, 8, 8]] * len(prompt_lengths))  # 64 patches -> 16 visual tokens
    ids = [[VISION_START] + [IMAGE_TOKEN] * 16 + [VISION_END] + torch.randint(0, VOCAB - 8, (n - 18,), generator=gen).tolist()
           for n in prompt_lengths]
    dtype = next(model.parameters()).dtype
    features = tuple(torch.randn(16, H, generator=gen).to(dtype) for _ in prompt_lengths)
    enc = EncodedPrompts(ids, None, grid, [64] * len(ids), features)
    completions = [torch.randint(0, VOCAB - 8, (n,), generator=gen).tolist() for n in completion_lengths]
    index = torch.arange(len(prompt_lengths)).repeat_interleave(group)
    return build_policy_inputs(model, enc, completions, index, 0, IMAGE_TOKEN, pixels=False), features


def _measured_forward_bytes(model, inputs, features, *, shared_prefix, autocast):
    """Bytes allocated and not freed by the forward (what it keeps for backward, plus its [M, T] output)."""
    from lit_triune.rl.logprobs import completion_logprobs

    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof, ctx:
        logprobs = completion_logprobs(model, inputs, features=features, shared_prefix=shared_prefix)
    assert logprobs.requires_grad
    return sum(e.self_cpu_memory_usage for e in prof.events()) - logprobs.nbytes


CASES = [  # (precision name, model dtype, autocast, shared prefix, checkpointing)
    ("fp32", torch.float32, False, True, False),
    ("fp32", torch.float32, False, True, True),
    ("fp32", torch.float32, False, False, False),
    ("fsdp-bf16", torch.bfloat16, False, True, False),
    ("fsdp-bf16", torch.bfloat16, False, True, True),
    ("autocast-bf16", torch.float32, True, True, False),
    ("autocast-bf16", torch.float32, True, True, True),
]


@pytest.mark.parametrize(("precision", "dtype", "autocast", "shared", "checkpointing"), CASES,
                         ids=[f"{c[0]}-{'shared' if c[3] else 'rows'}-{'ckpt' if c[4] else 'nockpt'}" for c in CASES])
def test_micro_batch_activations_within_10_percent_of_measured(config, precision, dtype, autocast, shared,
                                                               checkpointing):
    model = _model(config, dtype)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    group, prompt_lengths, completion_lengths = 4, [160, 131], [48, 30, 12, 48, 5, 48, 17, 40]
    inputs, features = _inputs(model, prompt_lengths, completion_lengths, group)
    measured = _measured_forward_bytes(model, inputs, features, shared_prefix=shared, autocast=autocast)
    planned = mp.micro_batch_activations(
        mp.Shape.of(config), mp.PRECISIONS[precision], rows=len(completion_lengths),
        prompts=mp.prompts_in_micro_batch(len(completion_lengths), group), prompt_len=max(prompt_lengths),
        response_len=max(completion_lengths), shared_prefix=shared, checkpointing=checkpointing)
    saved = planned.saved
    if autocast:  # the bf16 weight copies autocast makes are saved too (plan.py lists them on their own line)
        saved += mp.autocast_weight_copies(model, {id(p) for p in model.model.visual.parameters()}, checkpointing)
    assert saved == pytest.approx(measured, rel=0.10), (planned.terms, measured)
    print(f"{precision} shared={shared} checkpointing={checkpointing}: planned {saved} B, measured {measured} B, "
          f"ratio {saved / measured:.3f}")


def test_kv_copies_follow_the_issue_formula():
    config, _ = mp.load_config("unused", "7B")
    act = mp.micro_batch_activations(mp.Shape.of(config), mp.PRECISIONS["fsdp-bf16"], rows=1, prompts=1,
                                     prompt_len=1100, response_len=512, shared_prefix=True, checkpointing=True)
    assert act.kv_copies == 28 * 2 * 4 * 128 * 1100 * 2  # layers x 2 x kv_heads x head_dim x prompt x bytes: 63 MB


def test_dry_run_warns_that_orsta_as_written_does_not_fit_and_names_a_micro_batch(capsys):
    from lit_triune.plan import main

    assert main(["-c", "conf/orsta.yaml", "--gpu", "h100-80gb"]) == 1  # 7B from model_path's name, 8 GPUs
    out = capsys.readouterr().out
    assert "Qwen2.5-VL-7B-Instruct.json: 8.29 B parameters" in out
    assert "FSDP2 (fully_shard) FULL_SHARD over 8 GPUs" in out and "activation checkpointing on" in out
    assert "28 layers x 2 x 4 kv heads x 128 x 8192 tokens x 2 B x 16 rows" in out
    assert "WARNING: the update does not fit" in out and "gpu_memory_utilization <=" in out
