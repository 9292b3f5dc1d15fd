"""Two-process CPU DDP (gloo) run of SourceMetrics; each rank dumps its samples and what it logged.

A second part runs 6 steps uninterrupted and as 2 steps + a mid-window checkpoint + a resume to 6,
so the test can compare what the resumed run logs.

Started by test_source_metrics_ddp.py as ``python ddp_source_metrics_run.py OUT_DIR``; Lightning's
DDP launcher starts the second rank by running this script again.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from cb_records import SOURCES, make_record
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers.logger import Logger

from triune_callbacks import SourceMetrics, SourceStats


class AllRanksLogger(Logger):
    """Unlike the built-in loggers, records on every rank, so the ranks can be compared."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    name = "all_ranks"
    version = 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.history[key].append((int(step or 0), float(value)))


class Model(BoringModel):
    def __init__(self) -> None:
        super().__init__()
        self.train_samples: list[list[dict[str, Any]]] = []
        self.val_samples: list[dict[str, Any]] = []

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        out = super().training_step(batch, batch_idx)
        rank = self.global_rank
        record, samples = make_record(seed=100 * rank + batch_idx, n=5 + 4 * rank + batch_idx)  # uneven sizes
        self.train_samples.append(samples)
        return {"loss": out["loss"], "rollout": record}

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        record, samples = make_record(
            seed=10_000 + 100 * self.global_rank + batch_idx, n=7 + 3 * self.global_rank
        )
        if not self.trainer.sanity_checking:
            self.val_samples.extend(samples)
        return {"rollout": record}


def count_collectives() -> int:
    """Collective calls one SourceStats.compute makes with 8 sources x 20 statistics."""
    calls = 0
    originals = {name: getattr(dist, name) for name in ("all_gather", "all_reduce", "all_gather_into_tensor")}

    def counting(fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return fn(*args, **kwargs)

        return wrapper

    for name, fn in originals.items():
        setattr(dist, name, counting(fn))
    try:
        stats = SourceStats([f"s{i}" for i in range(8)], [f"c{j}" for j in range(20)])
        stats.update(torch.rand(10, 20), stats.source_index([f"s{i % 9}" for i in range(10)]))
        stats.compute()
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)
    return calls


def resume_histories(out_dir: Path) -> dict[str, Any]:
    """What the ranks log over 6 steps (windows of 4) uninterrupted, and stopped at 2 then resumed."""

    def fit(name: str, max_steps: int, callbacks: list[Any], ckpt_path: Path | None = None) -> dict[str, Any]:
        logger = AllRanksLogger()
        trainer = Trainer(
            strategy="ddp",
            accelerator="cpu",
            devices=2,
            max_steps=max_steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=logger,
            callbacks=[SourceMetrics(sources=SOURCES, log_every_n_steps=4), *callbacks],
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=bool(callbacks),
            use_distributed_sampler=False,
            default_root_dir=out_dir / name,
        )
        trainer.fit(Model(), ckpt_path=ckpt_path)
        return logger.history

    full = fit("full", 6, [])
    ckpt = ModelCheckpoint(dirpath=out_dir / "ckpt", every_n_train_steps=2, save_top_k=-1, filename="{step}")
    fit("stopped", 2, [ckpt])  # the checkpoint holds the open window: batches 0 and 1 of both ranks
    resumed = fit("resumed", 6, [], ckpt_path=out_dir / "ckpt" / "step=2.ckpt")
    return {"full": full, "resumed": resumed}


def main(out_dir: Path) -> None:
    torch.manual_seed(0)
    logger = AllRanksLogger()
    trainer = Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=2,
        max_steps=4,
        limit_val_batches=2,
        val_check_interval=4,
        num_sanity_val_steps=0,
        log_every_n_steps=2,
        logger=logger,
        callbacks=[SourceMetrics(sources=SOURCES)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        use_distributed_sampler=False,
        default_root_dir=out_dir,
    )
    model = Model()
    trainer.fit(model)
    result = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "train_samples": model.train_samples,
        "val_samples": model.val_samples,
        "history": logger.history,
        "collectives_per_compute": count_collectives(),
        "resume": resume_histories(out_dir),
    }
    (out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
