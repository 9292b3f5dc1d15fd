"""A training checkpoint -> an HF checkpoint (policy + processor) that transformers and vLLM load.

    lit-triune-export runs/orsta/checkpoints/last.ckpt exported/        # or: python -m lit_triune.export ...

The checkpoint may be a single file (one device, DDP) or the directory of a sharded FSDP checkpoint
(FSDP1's `state_dict_type: sharded`, FSDP2's `save_distributed_checkpoint: true`), which is consolidated on this one process first (what
`python -m lightning.pytorch.utilities.consolidate_checkpoint` does; no GPU, no process group).
The policy is rebuilt from the checkpoint's hyper-parameters (`--model-path` overrides where its
architecture is read from, e.g. when the training machine's path does not exist here).

The exported `generation_config.json` is greedy (`do_sample: false`, as validation decodes), with the
policy's stop and pad tokens: `model.generate(**inputs)` in transformers decodes greedily. vLLM reads only
`temperature`/`top_p`/`top_k`/... from that file, none of which is written, so it samples at its own
default (temperature 1.0) unless told: pass `SamplingParams(temperature=0)` for greedy answers.

vLLM on CPU: a plain `vllm.LLM(path)` reserves its default KV cache (a share of the machine's memory)
and fails on a small machine; give it a size, e.g.
`vllm.LLM(path, max_model_len=1024, kv_cache_memory_bytes=256 << 20)` (what lit_triune's VLLMEngine does
on CPU, docs/rollout.md). An HF copy beside each training checkpoint: `lit_triune.hf_copy.HFCopyOnCheckpoint`.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

VLLM_CPU_HINT = ("vLLM on CPU: vllm.LLM(path, max_model_len=1024, kv_cache_memory_bytes=256 << 20) -- its default "
                 "KV cache does not fit a small machine; SamplingParams(temperature=0) for greedy answers")


def greedy_generation_config(config: Any) -> Any:
    """A `GenerationConfig` that decodes greedily, keeping `config`'s special tokens and length limits only:
    the tiny presets sample at temperature 1.0 (rollouts), a Hub checkpoint ships its own sampling settings,
    and an exported policy should answer the way it was validated."""
    from transformers import GenerationConfig

    keep = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "max_length", "max_new_tokens")
    kept = {k: getattr(config, k, None) for k in keep}
    if kept.get("max_length") == GenerationConfig().max_length:
        kept.pop("max_length")  # transformers' default, not a setting of this checkpoint
    return GenerationConfig(do_sample=False, **{k: v for k, v in kept.items() if v is not None})


def save_pretrained(policy: nn.Module, processor: Any, out_dir: str | Path) -> Path:
    """Writes `policy` and `processor` with `save_pretrained`, with a greedy `generation_config`; the policy's
    own generation config is left as it was (rollouts keep sampling)."""
    out = Path(out_dir)
    saved = getattr(policy, "generation_config", None)
    if saved is not None:
        policy.generation_config = greedy_generation_config(saved)
    try:
        policy.save_pretrained(out)
    finally:
        if saved is not None:
            policy.generation_config = saved
    processor.save_pretrained(out)
    return out


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint as one dict; a sharded (directory) checkpoint is consolidated."""
    path = Path(path)
    if path.is_dir():
        # Lightning's own consolidation (private helpers of its consolidate_checkpoint CLI; re-check on upgrade)
        from lightning.fabric.utilities.load import _load_distributed_checkpoint
        from lightning.pytorch.utilities.consolidate_checkpoint import _format_checkpoint

        ckpt = _load_distributed_checkpoint(path)
        if "model" in ckpt:  # FSDPStrategy (FSDP1) names the weights "model"
            return _format_checkpoint(ckpt)
        # ModelParallelStrategy / FSDP2Strategy: "state_dict" already, optimizers as optimizer_0, optimizer_1, ...
        n = sum(1 for k in ckpt if k.startswith("optimizer_") and k.removeprefix("optimizer_").isdigit())
        ckpt["optimizer_states"] = [ckpt.pop(f"optimizer_{i}") for i in range(n)]
        return ckpt
    return torch.load(path, map_location="cpu", weights_only=False)  # our own training checkpoint


def load_module(checkpoint: str | Path, model_path: str | None = None, loaded: dict[str, Any] | None = None) -> Any:
    """The TriuneModule a training checkpoint holds: rebuilt from its hyper-parameters (`model_path` overrides
    where the architecture is read from), the policy's weights loaded, the IoU threshold restored. `loaded`:
    the checkpoint's dict when the caller has read it already (`load_checkpoint`)."""
    from lit_triune.rl.module import TriuneModule

    ckpt = load_checkpoint(checkpoint) if loaded is None else loaded
    accepted = inspect.signature(TriuneModule.__init__).parameters
    # (LightningCLI adds its own entries, e.g. `_instantiator`: only the module's arguments are passed)
    hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if k in accepted}
    if model_path is not None:
        hparams["model_path"] = model_path
    module = TriuneModule(**hparams)
    module.configure_model()
    policy_state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("policy.")}
    if not policy_state:
        raise ValueError(f"{checkpoint}: no policy weights in the checkpoint's state_dict")
    missing, unexpected = module.load_state_dict(policy_state, strict=False)
    missing = [k for k in missing if k.startswith("policy.")]
    if missing or unexpected:
        raise ValueError(f"{checkpoint}: weights do not fit the policy (missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]})")
    module.iou_threshold = float(ckpt.get("lit_triune", {}).get("iou_threshold", module.iou_threshold))
    return module


def export(checkpoint: str | Path, out_dir: str | Path, model_path: str | None = None) -> Path:
    out = Path(out_dir)
    load_module(checkpoint, model_path).export_pretrained(str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("checkpoint", help="a .ckpt file, or a sharded FSDP checkpoint directory")
    p.add_argument("out_dir", help="where to write the HF checkpoint")
    p.add_argument("--model-path", help="build the policy from here instead of the checkpoint's model_path")
    args = p.parse_args(argv)
    out = export(args.checkpoint, args.out_dir, args.model_path)
    print(f"exported {args.checkpoint} -> {out} (greedy generation_config; {VLLM_CPU_HINT})")


if __name__ == "__main__":
    main()
