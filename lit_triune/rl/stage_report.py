"""Per-source validation figures at the stage boundaries of a run: init, after warm-start, final.

They are printed as a table (rank 0), logged under `stage/<name>/<metric>/<source>` and appended to
`<log_dir>/stage_reports.json`, so a user sees what each stage added without opening TensorBoard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from lit_triune.rl.records import source_summary
from lit_triune.rl.sharding import full_parameters


def _merge(into: dict[str, dict[str, float]], part: dict[str, dict[str, float]]) -> None:
    for src, sums in part.items():
        acc = into.setdefault(src, {k: 0.0 for k in sums})
        for k, v in sums.items():
            acc[k] += v


class StageReporter:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.reports: dict[str, dict[str, dict[str, float]]] = {}

    def report(self, module: Any, stage: str) -> dict[str, dict[str, float]] | None:
        trainer = module.trainer
        dm = getattr(trainer, "datamodule", None)
        if not self.enabled or dm is None or stage in self.reports:
            return None
        loader = dm.val_dataloader()
        if loader is None or (isinstance(loader, list) and not loader):
            return None
        was_training = module.policy.training
        module.runner.start()
        engine = module.rollout_engine
        if hasattr(engine, "sync_weights"):  # engines with their own weight copy (vLLM) see this step's policy
            with full_parameters(trainer):  # FSDP: the whole weights, not this rank's shard
                engine.sync_weights(module.policy)
        sums: dict[str, dict[str, float]] = {}
        with torch.no_grad():
            for batch in loader:
                _merge(sums, source_summary(module.runner.evaluate(batch)))
        if was_training:
            module.policy.train()
            module._keep_frozen_in_eval()
        if dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, sums)
            sums = {}
            for part in gathered:
                _merge(sums, part)
        means = {src: {k: v / max(s["count"], 1.0) for k, v in s.items() if k != "count"} | {"count": s["count"]}
                 for src, s in sorted(sums.items())}
        self.reports[stage] = means
        # on every rank: Trainer.log_dir is a broadcast under DDP/FSDP (rank 0 alone would wait forever)
        log_dir = trainer.log_dir or trainer.default_root_dir
        if trainer.is_global_zero:
            self._print(stage, module.global_step, means)
            self._save(log_dir, stage, module.global_step, means)
        for logger in trainer.loggers:
            flat = {f"stage/{stage}/{k}/{src}": v for src, m in means.items() for k, v in m.items() if k != "count"}
            logger.log_metrics(flat, step=module.global_step)
        return means

    @staticmethod
    def _print(stage: str, step: int, means: dict[str, dict[str, float]]) -> None:
        lines = [f"\n== validation: {stage} (step {step}) ==", f"{'source':28s} {'n':>5s} {'accuracy':>9s} "
                 f"{'format':>7s} {'reward':>7s}"]
        for src, m in means.items():
            lines.append(f"{src:28s} {int(m['count']):5d} {m['accuracy']:9.3f} {m['format']:7.3f} {m['reward']:7.3f}")
        print("\n".join(lines), flush=True)

    @staticmethod
    def _save(log_dir: str, stage: str, step: int, means: dict[str, Any]) -> None:
        path = Path(log_dir) / "stage_reports.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[stage] = {"step": step, "sources": means}
        path.write_text(json.dumps(data, indent=2))
