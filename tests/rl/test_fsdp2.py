"""conf/orsta.yaml's FSDP2 strategy block, run for real: two CPU processes (gloo) through the command line,
`lit_triune.models.fsdp2.FSDP2Strategy` (Lightning's ModelParallelStrategy, which accepts a CPU accelerator
as it is) with the decoder layers and ViT blocks each `fully_shard`ed and activation-checkpointed, the policy
the root unit, sharded checkpoints (torch.distributed.checkpoint), on conf/tiny.yaml's model and data: a
warm-start step (ViT trained) and GRPO steps (ViT frozen), with the HF engine generating under FSDP2.

Checked against the same run under DDP: the same weights at the end on both ranks, the same losses, and
the same per-layer gradient norms (LayerGradNorm all-reduces the DTensor shards' sums). A run resumed from
the sharded checkpoint of step 2 ends with exactly the uninterrupted FSDP2 run's weights and losses.
`lit-triune-export` turns the sharded checkpoint into an HF checkpoint with those weights, and the
consolidated checkpoint validates on one process (no FSDP).
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
BLOCKS = f"[{QWEN}Qwen2_5_VLDecoderLayer,{QWEN}Qwen2_5_VLVisionBlock]"
FSDP2_ARGS = [  # conf/orsta.yaml's strategy block, on CPU: fp32 (no param_dtype / reduce_dtype)
    "--trainer.strategy=lit_triune.models.fsdp2.FSDP2Strategy",
    "--trainer.strategy.process_group_backend=gloo",
    f"--trainer.strategy.wrap_classes={BLOCKS}",
    f"--trainer.strategy.activation_checkpointing={BLOCKS}",
]


def _fit(root: Path, config: Path, strategy: list[str], resume: Path | None = None,
         ) -> tuple[list[dict], list[dict[str, torch.Tensor]]]:
    return fit_two_ranks(root, config, strategy, resume, max_steps=MAX_STEPS, warm_start_steps=WARM, timeout=500)


@pytest.mark.slow
@pytest.mark.ddp
def test_fsdp2_trains_like_ddp(tmp_path: Path, tiny_model_path: Path) -> None:
    config = snapshot_config(tmp_path)
    fsdp_info, fsdp_w = _fit(tmp_path / "fsdp2", config, FSDP2_ARGS)
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
    print(f"largest |FSDP2 - DDP| weight difference: {worst:.2e}")
    assert worst <= 1e-6
    for name, w in fsdp_w[0].items():
        assert torch.equal(w, fsdp_w[1][name]), name  # both ranks gather the same whole weights
    from transformers import AutoModelForImageTextToText

    init = AutoModelForImageTextToText.from_pretrained(tiny_model_path, dtype=torch.float32).state_dict()
    moved = [n for n, w in fsdp_w[0].items() if not torch.equal(w, init[n])]
    assert any(".visual." in n for n in moved)  # the warm-start trains the ViT
    assert any(".language_model." in n for n in moved)
    # the same losses logged at each GRPO step
    fsdp_loss = read_metrics(tmp_path / "fsdp2")["train/loss"]
    ddp_loss = read_metrics(tmp_path / "ddp")["train/loss"]
    assert fsdp_loss.keys() == ddp_loss.keys() and len(fsdp_loss) == MAX_STEPS - WARM
    for step, value in ddp_loss.items():
        assert abs(fsdp_loss[step] - value) < 1e-5, (step, fsdp_loss[step], value)
    # per-layer gradient norms are the whole layers' (all-reduced over the shards), as under DDP; the clipped
    # step's norm too (train/grad_norm: the DTensor shards' norms all-reduced)
    fsdp_m, ddp_m = read_metrics(tmp_path / "fsdp2"), read_metrics(tmp_path / "ddp")
    norms = [k for k in ddp_m if k.startswith("grad_norm/")] + ["train/grad_norm"]
    assert "grad_norm/vit/total" in norms and "grad_norm/llm/layer_00" in norms
    for key in norms:
        assert fsdp_m[key].keys() == ddp_m[key].keys(), key
        for step, value in ddp_m[key].items():
            assert abs(fsdp_m[key][step] - value) <= 1e-5 * max(1.0, abs(value)), (key, step, fsdp_m[key][step], value)
    # sharded checkpoints were written (a directory per checkpoint, one shard file per rank) ...
    ckpts = {int(c.stem.split("=")[1]): c for c in (tmp_path / "fsdp2" / "checkpoints").glob("step=*.ckpt")}
    assert set(ckpts) == {2, 4} and all(c.is_dir() for c in ckpts.values())
    assert len(list(ckpts[4].glob("*.distcp"))) == 2
    # ... and a run resumed from the one of step 2 ends where the uninterrupted run ended: weights, both
    # optimizers' states (AdamW moments of the RL optimizer, which the steps after 2 read) and data order
    resumed_info, resumed_w = _fit(tmp_path / "resumed", config, FSDP2_ARGS, resume=ckpts[2])
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
    consolidated = load_checkpoint(ckpts[4])
    assert len(consolidated["optimizer_states"]) == 2  # RL and warm-start AdamW, whole (not sharded)
    torch.save(consolidated, single)
    proc = run_fit(["validate", "-c", str(config), f"--ckpt_path={single}", "--trainer.logger=false",
                    f"--trainer.default_root_dir={tmp_path / 'validate'}", "--data.num_workers=0",
                    f"--data.cache_dir={tmp_path / 'fsdp2' / 'data'}",
                    *[f"--data.val_synthetic.{t}=2" for t in ("counting", "grounding", "ocr", "chart")]])
    assert "val/accuracy/all" in proc.stdout


@pytest.mark.slow
@pytest.mark.ddp
def test_fsdp2_bf16_params_fp32_reduce_trains(tmp_path: Path, tiny_model_path: Path) -> None:
    """conf/orsta.yaml's mixed precision (FSDP2 MixedPrecisionPolicy: bf16 gathered parameters and compute,
    fp32 gradient reduce-scatter, fp32 sharded master weights and AdamW state) on the same run: finite losses
    at every GRPO step, weights kept in fp32, moved, and the same on both ranks."""
    args = [*FSDP2_ARGS, "--trainer.strategy.param_dtype=bfloat16", "--trainer.strategy.reduce_dtype=float32"]
    info, weights = _fit(tmp_path / "bf16", snapshot_config(tmp_path), args)
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
def test_fsdp2_with_colocated_vllm_engines(tmp_path: Path) -> None:
    """conf/orsta.yaml's rollout under FSDP2: a vLLM engine in each rank's process (`external_launcher`), its
    weights synced from the sharded policy after every step (every FSDP2 unit unsharded, `full_parameters`).
    After a warm-start and two GRPO steps each rank's engine samples from the trained policy: its
    sampled-token log-probs equal the trainer's recompute (a forward of the sharded policy), and not the
    initial weights'."""
    pytest.importorskip("vllm")
    engine = {"class_path": "triune_callbacks.RolloutCallback", "init_args": {"engine": {
        "class_path": "lit_triune.rollout.VLLMEngine",
        "init_args": {"max_model_len": 512, "max_num_seqs": 32, "kv_cache_memory_bytes": 64 << 20,
                      "engine_kwargs": {"distributed_executor_backend": "external_launcher"}}}}}
    root, out = tmp_path / "run", tmp_path / "gaps"
    args = tiny_args(root, max_steps=3, warm_start_steps=1, ckpt_every=3, config=snapshot_config(tmp_path),
                     num_workers=0,
                     extra=["--trainer.devices=2", "--model.reward_workers=0", "--model.max_new_tokens=16", *FSDP2_ARGS,
                            f"--trainer.callbacks+={json.dumps(engine)}",
                            "--trainer.callbacks+=engine_probe.EngineGap", f"--trainer.callbacks.init_args.out_dir={out}"])
    run_fit(args, timeout=600)
    gaps = [json.loads((out / f"gaps{r}.json").read_text()) for r in (0, 1)]
    print("\nengine vs trainer log-prob gaps per rank:", [(g["trained"], g["initial"], g["tokens"], g["ids"]) for g in gaps])
    assert not set(gaps[0]["ids"]) & set(gaps[1]["ids"])  # each rank its own validation prompts
    for g in gaps:
        assert g["tokens"] > 0
        assert g["trained"] < 1e-4
        assert g["initial"] > 1e-2
