"""A callback the RL subprocess tests add on the command line (`--trainer.callbacks+=rl_probe.RankProbe`):
on every rank it records what the rank trained on and saw, and dumps it when training ends."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

WATCHED = ("train/reward_mean", "train/accuracy_mean", "train/format_mean", "train/response_length_mean",
           "train/groups_zero_std", "train/loss", "train/grad_norm", "train/advantage_abs_mean")


class RankProbe(pl.Callback):
    """Writes `<out_dir>/rank<R>.json` (per step: data ids, this rank's own rollout means, the metric
    values Lightning reduced) and `<out_dir>/rank<R>.pt` (the policy's final weights)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.steps: list[dict[str, Any]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.steps.append({"global_step": trainer.global_step, "ids": list(batch.ids),
                           "warm_start": bool(pl_module.in_warm_start)})

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        rec = self.steps[-1]
        rollout = outputs.get("rollout") if isinstance(outputs, dict) else None
        if rollout is not None:
            lengths = rollout["response_length"].float()
            rec["local"] = {"train/reward_mean": float(rollout["reward"].mean()),
                            "train/accuracy_mean": float(rollout["accuracy"].mean()),
                            "train/format_mean": float(rollout["format"].mean()),
                            "train/response_length_mean": float(lengths.mean())}
            # what Lightning made of self.log on this rank (reduced over ranks when sync_dist is set)
            rec["logged"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k in WATCHED}
        rec["after_step"] = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        rank = trainer.global_rank
        self.out_dir.mkdir(parents=True, exist_ok=True)
        info = {"rank": rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
                "steps": self.steps, "counters": pl_module.counters.as_dict(), "pid": os.getpid()}
        (self.out_dir / f"rank{rank}.json").write_text(json.dumps(info))
        torch.save(full_weights(trainer, pl_module.policy), self.out_dir / f"rank{rank}.pt")


def full_weights(trainer: pl.Trainer, policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The policy's whole weights under HF names: under FSDP gathered (every rank), wrapper names dropped
    (FSDP1: `checkpoint_weights`, what the vLLM weight sync sends; FSDP2: the full state dict, in the
    master dtype, not the units' `param_dtype`)."""
    from lit_triune.models.sharding import full_parameters, trainer_fsdp_root
    from lit_triune.rollout.vllm_engine import checkpoint_weights

    root = trainer_fsdp_root(trainer)
    if root is None:
        return {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}
    from torch.distributed.fsdp import FSDPModule

    if isinstance(root, FSDPModule):  # FSDP2: the fp32 shards gathered (not the param_dtype copies compute uses)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(root, options=StateDictOptions(full_state_dict=True))  # every rank, HF names
        return {k: v.detach().cpu().clone() for k, v in full.items()}
    with full_parameters(trainer):
        return {name: p.cpu().clone() for name, p in checkpoint_weights(policy)}
