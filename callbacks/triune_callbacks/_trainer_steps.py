"""The trainer counters the callbacks share, kept in one place.

Lightning's own ``self.log`` puts metrics at ``fit_loop.epoch_loop._batches_that_stepped`` on the
logger's x-axis and flushes when ``(that + 1) % log_every_n_steps == 0``. Callbacks that write to
the loggers directly use the same counter, so every curve of a run shares one x-axis; Lightning's
``LearningRateMonitor`` reads the same private attribute.
"""

from __future__ import annotations

import lightning.pytorch as pl


def logger_step(trainer: pl.Trainer) -> int:
    """Training batches that stepped an optimizer so far: the x-axis Lightning's loggers use."""
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


def is_logging_batch(trainer: pl.Trainer, every_n: int | None) -> bool:
    """Whether the current training batch closes a window of ``every_n`` batches.

    Called from a hook of the running batch (before Lightning increments its counter), like
    Lightning's ``should_update_logs``. ``every_n=None`` follows ``Trainer(log_every_n_steps)``.
    Every rank gets the same answer, because the counter is the same everywhere.
    """
    n = trainer.log_every_n_steps if every_n is None else every_n
    if n <= 0:
        return False
    return (logger_step(trainer) + 1) % n == 0
