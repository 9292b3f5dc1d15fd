"""In-process fits of TriuneModule on a few synthetic prompts (for tests that need the module object)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from lit_triune.data import TriuneDataModule
from lit_triune.rl.module import TriuneModule


def tiny_module(**overrides: Any) -> TriuneModule:
    kwargs: dict[str, Any] = dict(model_path="tiny", lr=1e-3, group_size=4, max_new_tokens=8, reward_workers=0,
                                  stage_reports=False, warm_start_steps=0, freeze="vision")
    kwargs.update(overrides)
    return TriuneModule(**kwargs)


def tiny_data(cache: Path, **overrides: Any) -> TriuneDataModule:
    kwargs: dict[str, Any] = dict(synthetic={"counting": 16, "grounding": 16}, batch_size=2, num_workers=0,
                                  model_path="tiny", cache_dir=str(cache), shard_size=8)
    kwargs.update(overrides)
    return TriuneDataModule(**kwargs)


def fit(module: TriuneModule, data: TriuneDataModule, root: Path, max_steps: int,
        callbacks: list[pl.Callback] | None = None, logger: Any = False) -> pl.Trainer:
    pl.seed_everything(0)
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=logger, log_every_n_steps=1,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=root,
                         callbacks=list(callbacks or []))
    trainer.fit(module, datamodule=data)
    return trainer
