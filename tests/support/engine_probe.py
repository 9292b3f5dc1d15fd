"""A callback the multi-process vLLM test adds on the command line: at the end of training (before
teardown closes the engine) every rank samples with its engine and writes how far the engine's
sampled-token log-probs are from the trained policy's recompute and from the initial weights'."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from logprob_gap import trainer_logprobs

from lit_triune.rl.policy import load_policy
from lit_triune.rollout.base import SamplingConfig


class EngineGap(pl.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        batch = next(iter(trainer.datamodule.val_dataloader()))
        prompts, images = list(batch.prompts), list(batch.images)
        r = module.rollout_engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=12, seed=3))
        module.policy.eval()
        trained = trainer_logprobs(module.policy, module.processor, prompts, images, r)  # FSDP: a collective forward
        initial = trainer_logprobs(load_policy(module.model_dir).eval(), module.processor, prompts, images, r)
        t = trained.shape[1]
        mask = torch.zeros(len(r.sampling_logprobs), t, dtype=torch.bool)
        sampled = torch.zeros(len(r.sampling_logprobs), t)
        for i, row in enumerate(r.sampling_logprobs):
            mask[i, : len(row)] = True
            sampled[i, : len(row)] = torch.tensor(row)
        gaps = {"trained": (sampled - trained).abs()[mask].max().item(),
                "initial": (sampled - initial).abs()[mask].max().item(),
                "tokens": int(mask.sum()), "ids": list(batch.ids)}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"gaps{trainer.global_rank}.json").write_text(json.dumps(gaps))
