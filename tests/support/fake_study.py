"""A study directory as the runner leaves it — config.yaml, TensorBoard events, stage_reports.json per run —
with scripted values, for the figure and notebook tests (no training)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger

from lit_triune.study import configs, layout

SOURCES = ["synthetic_counting", "synthetic_grounding"]
STEPS = 20  # RL rollout batches
VAL_EVERY = 5
VARIANTS = {"recipe": "vision", "freeze_none": "none", "iou_fixed_0.5": "vision"}


def _threshold(variant: str, step: int) -> float:
    if variant == "iou_fixed_0.5":
        return 0.5
    return 0.85 if step < 2 else 0.95 if step < 5 else 0.99  # 10 % / 25 % of 20


def make_study(out: Path, seeds: tuple[int, ...] = (0, 1)) -> Path:
    for v_idx, (variant, freeze) in enumerate(VARIANTS.items()):
        for seed in seeds:
            run = layout.run_dir(out, variant, seed)
            configs.write({"model": {"freeze": freeze, "updates_per_rollout": 1}, "seed_everything": seed},
                          run / layout.CONFIG)
            logger = TensorBoardLogger(save_dir=str(run), name=layout.LOGS, version="")
            for step in range(STEPS):
                acc = min(1.0, 0.2 + 0.03 * step * (1 + v_idx) / 2 + 0.05 * seed)
                m = {f"train/reward/{s}": acc for s in SOURCES} | {f"train/accuracy/{s}": acc for s in SOURCES}
                m["train/iou_threshold"] = _threshold(variant, step)
                if freeze != "vision" and step % 2 == 0:
                    norms = [2.0 * math.exp(0.05 * step) / (i + 1) for i in range(3)]
                    m |= {f"grad_norm/vit/layer_{i:02d}": n for i, n in enumerate(norms)}
                    m["grad_norm/vit/first_over_last"] = norms[0] / norms[-1]
                if (step + 1) % VAL_EVERY == 0:  # Lightning logs the validation after batch k + 1 at step k
                    m |= {f"val/accuracy/{s}": acc for s in SOURCES} | {"val/accuracy/all": acc}
                    m["val/iou/synthetic_grounding"] = acc / 2
                logger.log_metrics(m, step=step)
            logger.finalize("success")
            box = {"iou": 0.1, "iou@0.5": 0.0, "iou@threshold": 0.0, "parsed_boxes": 0.5, "box_count": 8}
            reports = {stage: {"step": step, "sources": {
                "synthetic_counting": {"accuracy": acc, "format": 1.0, "reward": acc, "count": 8},
                "synthetic_grounding": {"accuracy": acc, "format": 1.0, "reward": acc, "count": 8,
                                        **box, "iou": acc / 2}}}
                for stage, step, acc in (("init", 0, 0.2), ("final", STEPS, 0.9 - 0.1 * v_idx))}
            (layout.log_dir(run) / layout.STAGE_REPORTS).write_text(json.dumps(reports))
    return out
