"""Shared pieces for the callback tests: an in-memory logger and the reference statistics."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from memory_logger import MemoryLogger


@pytest.fixture
def memory_logger() -> MemoryLogger:
    return MemoryLogger()


REFLECTION = re.compile(
    r"(?<![\w-])(?:re-check|re-evaluate|re-examine|re-think|recheck|reevaluate|reexamine|reevaluation|rethink"
    r"|check\s+again|think\s+again|try\s+again|verify|wait|yet)(?![\w-])",
    re.IGNORECASE,
)


def reference_stat(
    samples: Sequence[dict[str, Any]], stat: str, source: str, sources: Sequence[str]
) -> float:
    """The statistic computed the plain way over a list of per-sample dicts (NaN when no sample)."""

    def bucket(s: dict[str, Any]) -> str:
        return s["data_source"] if s["data_source"] in sources else "other"

    rows = [s for s in samples if source == "all" or bucket(s) == source]
    if stat == "samples":
        return float(len(rows)) if rows else math.nan

    def value(s: dict[str, Any]) -> float:
        reflect = bool(REFLECTION.search(s["response"]))
        correct = s["accuracy"] >= 0.5
        table: dict[str, Callable[[], float]] = {
            "reward": lambda: s["reward"],
            "accuracy": lambda: s["accuracy"],
            "format": lambda: s["format"],
            "response_length": lambda: s["response_length"],
            "response_length_correct": lambda: s["response_length"] if correct else math.nan,
            "response_length_wrong": lambda: math.nan if correct else s["response_length"],
            "truncation_ratio": lambda: float(s["truncated"]),
            "reflection_ratio": lambda: float(reflect),
            "accuracy_reflection": lambda: s["accuracy"] if reflect else math.nan,
            "accuracy_no_reflection": lambda: math.nan if reflect else s["accuracy"],
            "iou": lambda: s["iou"],
            "map": lambda: s["map"],
            "iou@0.5": lambda: math.nan if math.isnan(s["iou"]) else float(s["iou"] >= 0.5),
            "verifier_failure_ratio": lambda: float(s["verifier_failure"]),
        }
        return table[stat]()

    values = [v for v in map(value, rows) if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


@pytest.fixture
def reference() -> Callable[..., float]:
    return reference_stat
