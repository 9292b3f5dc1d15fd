"""A training checkpoint -> an HF checkpoint (policy + processor) that transformers and vLLM load.

    lit-triune-export runs/orsta/checkpoints/last.ckpt exported/        # or: python -m lit_triune.export ...

The checkpoint may be a single file (one device, DDP) or the directory of a sharded FSDP checkpoint
(FSDP1's `state_dict_type: sharded`, FSDP2's `save_distributed_checkpoint: true`), which is consolidated on this one process first (what
`python -m lightning.pytorch.utilities.consolidate_checkpoint` does; no GPU, no process group).
The policy is rebuilt from the checkpoint's hyper-parameters (`--model-path` overrides where its
architecture is read from, e.g. when the training machine's path does not exist here).
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

import torch


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


def export(checkpoint: str | Path, out_dir: str | Path, model_path: str | None = None) -> Path:
    from lit_triune.rl.module import TriuneModule

    ckpt = load_checkpoint(checkpoint)
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
    out = Path(out_dir)
    module.export_pretrained(str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("checkpoint", help="a .ckpt file, or a sharded FSDP checkpoint directory")
    p.add_argument("out_dir", help="where to write the HF checkpoint")
    p.add_argument("--model-path", help="build the policy from here instead of the checkpoint's model_path")
    args = p.parse_args(argv)
    out = export(args.checkpoint, args.out_dir, args.model_path)
    print(f"exported {args.checkpoint} -> {out}")


if __name__ == "__main__":
    main()
