"""An in-memory Lightning logger for the tests: what was logged, at which step, on every rank."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lightning.pytorch.loggers.logger import Logger


class MemoryLogger(Logger):
    """Keeps every ``log_metrics`` call as ``history[tag] = [(step, value), ...]`` on every rank."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.history[key].append((int(step if step is not None else -1), float(value)))
