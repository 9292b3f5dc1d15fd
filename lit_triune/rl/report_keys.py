"""Key names of the stage reports (`<log_dir>/stage_reports.json`) shared by their writer
(`rl/stage_report.py`) and their readers (`study/`, `progress.py`), kept free of heavy imports so the
readers load without torch."""

from __future__ import annotations

SAMPLED = "sampled/"
"""Prefix of the figures over `val_samples` sampled completions per prompt (`sampled/accuracy`, ...), beside
the greedy ones; `sampled/count` counts completions."""
