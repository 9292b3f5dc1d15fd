"""Key names of the stage reports (`<log_dir>/stage_reports.json`) shared by their writer
(`rl/stage_report.py`) and their readers (`study/`, `progress.py`), kept free of heavy imports so the
readers load without torch."""

from __future__ import annotations

from typing import Any

SAMPLED = "sampled/"
"""Prefix of the figures over `val_samples` sampled completions per prompt (`sampled/accuracy`, ...), beside
the greedy ones; `sampled/count` counts completions."""


def has_sampled(reports: dict[str, Any], stage: str | None = None) -> bool:
    """Whether a stage_reports.json (`{stage: {"sources": {source: {metric: value}}}}`) has figures over
    sampled completions: in `stage`, or in any stage when None."""
    stages = reports.values() if stage is None else [reports.get(stage) or {}]
    return any(f"{SAMPLED}accuracy" in m for r in stages for m in (r.get("sources") or {}).values())
