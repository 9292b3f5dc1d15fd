"""conf/orsta.yaml's FSDP strategy block, run for real: two CPU processes (gloo) through the command line,
`FSDPStrategy` (via tests/support/cpu_fsdp.py, which only lets it run on CPU) with FULL_SHARD, the decoder
layers and ViT blocks auto-wrapped and activation-checkpointed, use_orig_params and sharded checkpoints,
on conf/tiny.yaml's model and data: a warm-start step (ViT trained) and GRPO steps (ViT frozen).

Manual optimization under Lightning's default FSDP wrapping fails at the first backward (the backward
runs inside the root's forward; lit_triune/models/sharding.py): the policy is its own FSDP root instead.
Checked against the same run under DDP: the same weights at the end (gradients of the same data, reduced
in another order) on both ranks, the same losses, and the same per-layer gradient norms (LayerGradNorm
all-reduces the shards' sums under FSDP). A run resumed from the sharded checkpoint of step 2 ends with
exactly the uninterrupted FSDP run's weights and losses. `lit-triune-export` turns the sharded checkpoint
into an HF checkpoint with those weights, and the consolidated checkpoint validates on one process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from rl_cli import fit_two_ranks, read_metrics, run_fit, snapshot_config, tiny_args

MAX_STEPS = 4
WARM = 1
QWEN = "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl."
FSDP_ARGS = [  # conf/orsta.yaml's strategy block, on CPU
    "--trainer.strategy=cpu_fsdp.CPUFSDPStrategy",
    "--trainer.strategy.process_group_backend=gloo",
    "--trainer.strategy.sharding_strategy=FULL_SHARD",
    f"--trainer.strategy.auto_wrap_policy=[{QWEN}Qwen2_5_VLDecoderLayer,{QWEN}Qwen2_5_VLVisionBlock]",
    f"--trainer.strategy.activation_checkpointing_policy=[{QWEN}Qwen2_5_VLDecoderLayer,{QWEN}Qwen2_5_VLVisionBlock]",
    "--trainer.strategy.state_dict_type=sharded",
    '--trainer.strategy.dict_kwargs={"use_orig_params": true}',
]


def _fit(root: Path, config: Path, strategy: list[str], resume: Path | None = None,
         ) -> tuple[list[dict], list[dict[str, torch.Tensor]]]:
    return fit_two_ranks(root, config, strategy, resume, max_steps=MAX_STEPS, warm_start_steps=WARM, timeout=400)


@pytest.mark.slow
@pytest.mark.ddp
def test_fsdp_trains_like_ddp(tmp_path: Path, tiny_model_path: Path) -> None:
    config = snapshot_config(tmp_path)
    fsdp_info, fsdp_w = _fit(tmp_path / "fsdp", config, FSDP_ARGS)
    # Under FSDP the HF engine makes one generate call per chunk (ranks must make the same number of calls);
    # under DDP it would make one per data source, which samples other tokens: the reference does as FSDP.
    one_call = {"class_path": "triune_callbacks.RolloutCallback", "init_args": {"engine": {
        "class_path": "lit_triune.rollout.hf_engine.HFGenerateEngine", "init_args": {"split_by_length_key": False}}}}
    ddp_info, ddp_w = _fit(tmp_path / "ddp", config, ["--trainer.strategy=ddp",
                                                      f"--trainer.callbacks+={json.dumps(one_call)}"])

    for info in (fsdp_info, ddp_info):
        assert [r["global_step"] for r in info] == [MAX_STEPS, MAX_STEPS]
    # the same prompts on each rank in both runs
    assert [[s["ids"] for s in r["steps"]] for r in fsdp_info] == [[s["ids"] for s in r["steps"]] for r in ddp_info]
    assert fsdp_w[0].keys() == ddp_w[0].keys()
    worst = max(float((fsdp_w[r][n] - ref).abs().max()) for n, ref in ddp_w[0].items() for r in (0, 1))
    print(f"largest |FSDP - DDP| weight difference: {worst:.2e}")
    for name, ref in ddp_w[0].items():
        for rank in (0, 1):
            assert torch.allclose(fsdp_w[rank][name], ref, atol=1e-5, rtol=1e-4), (name, rank)
    from transformers import AutoModelForImageTextToText

    init = AutoModelForImageTextToText.from_pretrained(tiny_model_path, dtype=torch.float32).state_dict()
    moved = [n for n, w in fsdp_w[0].items() if not torch.equal(w, init[n])]
    assert any(".visual." in n for n in moved)  # the warm-start trains the ViT
    assert any(".language_model." in n for n in moved)
    # the same losses logged at each GRPO step
    fsdp_loss = read_metrics(tmp_path / "fsdp")["train/loss"]
    ddp_loss = read_metrics(tmp_path / "ddp")["train/loss"]
    assert fsdp_loss.keys() == ddp_loss.keys() and len(fsdp_loss) == MAX_STEPS - WARM
    for step, value in ddp_loss.items():
        assert abs(fsdp_loss[step] - value) < 1e-4, (step, fsdp_loss[step], value)
    # per-layer gradient norms are the whole layers' (all-reduced over the shards), as under DDP
    fsdp_m, ddp_m = read_metrics(tmp_path / "fsdp"), read_metrics(tmp_path / "ddp")
    norms = [k for k in ddp_m if k.startswith("grad_norm/")]
    assert "grad_norm/vit/total" in norms and "grad_norm/llm/layer_00" in norms
    for key in norms:
        assert fsdp_m[key].keys() == ddp_m[key].keys(), key
        for step, value in ddp_m[key].items():
            assert abs(fsdp_m[key][step] - value) <= 1e-4 * max(1.0, abs(value)), (key, step, fsdp_m[key][step], value)
    # sharded checkpoints were written (a directory per checkpoint, one shard file per rank) ...
    ckpts = {int(c.stem.split("=")[1]): c for c in (tmp_path / "fsdp" / "checkpoints").glob("step=*.ckpt")}
    assert set(ckpts) == {2, 4} and all(c.is_dir() for c in ckpts.values())
    # ... and a run resumed from the one of step 2 ends where the uninterrupted run ended
    resumed_info, resumed_w = _fit(tmp_path / "resumed", config, FSDP_ARGS, resume=ckpts[2])
    assert [[s["ids"] for s in r["steps"]] for r in resumed_info] == [[s["ids"] for s in r["steps"][2:]]
                                                                       for r in fsdp_info]
    for name, ref in fsdp_w[0].items():
        assert torch.equal(resumed_w[0][name], ref), name
    resumed_loss = read_metrics(tmp_path / "resumed")["train/loss"]
    assert resumed_loss == {k: v for k, v in fsdp_loss.items() if k >= 2}

    # the sharded checkpoint, exported on one process without a process group (lit-triune-export), is the
    # trained policy in HF form; consolidated, it validates on one process
    from lit_triune.export import export, load_checkpoint

    out = export(ckpts[4], tmp_path / "hf")
    exported = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32).state_dict()
    assert exported.keys() == fsdp_w[0].keys()
    for name, ref in fsdp_w[0].items():
        assert torch.equal(exported[name], ref), name
    single = tmp_path / "consolidated.ckpt"
    torch.save(load_checkpoint(ckpts[4]), single)
    proc = run_fit(["validate", "-c", str(config), f"--ckpt_path={single}", "--trainer.logger=false",
                    f"--trainer.default_root_dir={tmp_path / 'validate'}", "--data.num_workers=0",
                    f"--data.cache_dir={tmp_path / 'fsdp' / 'data'}",
                    *[f"--data.val_synthetic.{t}=2" for t in ("counting", "grounding", "ocr", "chart")]])
    assert "val/accuracy/all" in proc.stdout


@pytest.mark.slow
@pytest.mark.ddp
def test_fsdp_bf16_mixed_trains(tmp_path: Path, tiny_model_path: Path) -> None:
    """conf/orsta.yaml's precision (bf16-mixed: fp32 master weights, bf16 compute in FSDP) on the same run:
    finite losses at every GRPO step, weights kept in fp32 and moved."""
    info, weights = _fit(tmp_path / "bf16", snapshot_config(tmp_path), [*FSDP_ARGS, "--trainer.precision=bf16-mixed"])
    assert [r["global_step"] for r in info] == [MAX_STEPS, MAX_STEPS]
    losses = read_metrics(tmp_path / "bf16")["train/loss"]
    assert len(losses) == MAX_STEPS - WARM and all(math.isfinite(v) for v in losses.values())
    from transformers import AutoModelForImageTextToText

    init = AutoModelForImageTextToText.from_pretrained(tiny_model_path, dtype=torch.float32).state_dict()
    assert all(w.dtype == torch.float32 for w in weights[0].values())
    assert any(not torch.equal(w, init[n]) for n, w in weights[0].items() if ".language_model." in n)
    for name, w in weights[0].items():
        assert torch.equal(w, weights[1][name]), name


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.ddp
def test_fsdp_with_colocated_vllm_engines(tmp_path: Path) -> None:
    """conf/orsta.yaml's rollout: a vLLM engine in each FSDP rank's process (`external_launcher`), its
    weights synced from the sharded policy after every step (inside `summon_full_params`). Started the way
    the README starts the recipe (`main.py fit`, Lightning's own launcher, which sets no RANK for vLLM).
    After a warm-start and two GRPO steps each rank's engine samples from the trained policy: its
    sampled-token log-probs equal the trainer's recompute, and not the initial weights'."""
    pytest.importorskip("vllm")
    engine = {"class_path": "triune_callbacks.RolloutCallback", "init_args": {"engine": {
        "class_path": "lit_triune.rollout.VLLMEngine",
        "init_args": {"max_model_len": 512, "max_num_seqs": 32, "kv_cache_memory_bytes": 64 << 20,
                      "engine_kwargs": {"distributed_executor_backend": "external_launcher"}}}}}
    root, out = tmp_path / "run", tmp_path / "gaps"
    args = tiny_args(root, max_steps=3, warm_start_steps=1, ckpt_every=3, config=snapshot_config(tmp_path),
                     num_workers=0,
                     extra=["--trainer.devices=2", "--model.reward_workers=0", "--model.max_new_tokens=16", *FSDP_ARGS,
                            f"--trainer.callbacks+={json.dumps(engine)}",
                            "--trainer.callbacks+=engine_probe.EngineGap", f"--trainer.callbacks.init_args.out_dir={out}"])
    run_fit(args, timeout=500)
    gaps = [json.loads((out / f"gaps{r}.json").read_text()) for r in (0, 1)]
    print("\nengine vs trainer log-prob gaps per rank:", [(g["trained"], g["initial"], g["tokens"], g["ids"]) for g in gaps])
    assert not set(gaps[0]["ids"]) & set(gaps[1]["ids"])  # each rank its own validation prompts
    for g in gaps:
        assert g["tokens"] > 0
        assert g["trained"] < 1e-4
        assert g["initial"] > 1e-2
