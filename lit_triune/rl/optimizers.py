"""The RL stage's optimizer and learning-rate schedule: the paper's by default, any class_path when configured.

The default is the released recipe's: AdamW (`lr`, `adam_betas`, `weight_decay` of the module) with a linear
warm-up over `warmup_steps` RL steps, then a constant rate. A config may instead name any optimizer and
scheduler the Lightning way (`model.optimizer: {class_path: torch.optim.SGD, init_args: {lr: 0.01}}`,
`model.lr_scheduler: {class_path: torch.optim.lr_scheduler.CosineAnnealingLR, init_args: {T_max: 100}}`).
The RL scheduler steps once per RL optimizer step that updated the parameters (not in the warm-start, not
on a skipped non-finite step), so its step count is the RL update count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

OptimizerFactory = Callable[[Iterable], Optimizer]
SchedulerFactory = Callable[[Optimizer], Any]


class LinearWarmup(LambdaLR):
    """The learning rate rises linearly over the first `warmup_steps` scheduler steps, then stays constant
    (`warmup_steps` 0: constant from the start). Factor at step s: min(1, (s + 1) / warmup_steps)."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 0) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        return min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0


def rl_optimizer(params: list[torch.nn.Parameter], factory: OptimizerFactory | None, *, lr: float,
                 betas: tuple[float, float], weight_decay: float) -> Optimizer:
    """`factory(params)` when a config names an optimizer; else AdamW with the given settings."""
    if factory is not None:
        return factory(params)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def rl_scheduler(optimizer: Optimizer, factory: SchedulerFactory | None, warmup_steps: int) -> LRScheduler:
    """`factory(optimizer)` when a config names a scheduler; else `LinearWarmup(optimizer, warmup_steps)`."""
    if factory is not None:
        return factory(optimizer)
    return LinearWarmup(optimizer, warmup_steps)


def shadowed_settings(optimizer: OptimizerFactory | None, scheduler: SchedulerFactory | None, *,
                      given: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """The module settings a configured optimizer or scheduler makes unused, among those set away from their
    defaults: `lr`, `adam_betas`, `weight_decay` beside `optimizer`; `warmup_steps` beside `lr_scheduler`."""
    names = ([("lr", "adam_betas", "weight_decay")] if optimizer is not None else []) + (
        [("warmup_steps",)] if scheduler is not None else [])
    return [k for group in names for k in group if _norm(given[k]) != _norm(defaults[k])]


def _norm(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value
