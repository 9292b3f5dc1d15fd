"""Piecewise-constant schedule of one module attribute over training progress."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from typing_extensions import override

from triune_callbacks._trainer_steps import is_logging_batch, logger_step


class ScheduledValue(Callback):
    """Sets ``pl_module.<attr>`` from a piecewise-constant schedule over training progress.

    Progress is ``trainer.global_step / total`` where ``total`` is ``Trainer(max_steps)`` when set,
    else ``trainer.estimated_stepping_batches``. ``global_step`` counts optimizer steps, so under
    manual optimization with several optimizer steps per batch set ``max_steps``.

    The value is ``values[i]`` where ``i`` is the number of milestones ``<= progress``: a milestone
    belongs to the stage it opens (with ``milestones=[0.1]`` and 100 steps, step 9 gets ``values[0]``
    and step 10 gets ``values[1]``).

    It is applied at ``on_train_start`` (after a checkpoint is restored), at every
    ``on_train_batch_start`` and at ``on_validation_start`` during fitting. It is written to the
    loggers under ``log_key`` at Lightning's logger step every ``Trainer(log_every_n_steps)`` batches
    and, in addition, at the first batch of each stage, so plots can mark the exact step where a
    stage begins. Because the value is a function of ``global_step``, a resumed run
    gets the value its schedule gives at the restored step; the checkpoint keeps the schedule it ran
    with, and a resume under a different schedule or step budget warns. The value itself has one
    owner, the module attribute: this callback keeps no copy of it (in memory or in checkpoints).

    Args:
        attr: Attribute of the LightningModule to set; may be dotted (``"reward_ctx.iou_threshold"``).
            It must already exist when training starts, so a typo cannot go unnoticed.
        milestones: Strictly increasing fractions of training in ``(0, 1)`` where the value changes.
        values: ``len(milestones) + 1`` finite values, one per stage.
        log_key: Logged name; ``None`` means ``"train/<attr>"``, ``""`` turns logging off.
        start_step: Optimizer steps before the schedule starts (e.g. a supervised warm-up stage): progress
            is ``max(0, global_step - start_step) / (total - start_step)``, so the first stage's value
            holds until then.

    Raises:
        MisconfigurationException: If ``attr`` is not a (dotted) identifier, milestones are not
            strictly increasing in ``(0, 1)``, ``values`` has the wrong length or a non-finite entry;
            when fitting starts if the attribute does not exist; at train start if the total number of
            steps is unknown.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from triune_callbacks import ScheduledValue
        >>> warmup = ScheduledValue("entropy_coef", milestones=[0.5], values=[0.01, 0.0])
        >>> trainer = Trainer(max_steps=100, callbacks=[warmup], logger=False)
        >>> warmup.value_at(0.25), warmup.value_at(0.5)
        (0.01, 0.0)
    """

    def __init__(
        self,
        attr: str,
        milestones: Sequence[float],
        values: Sequence[float],
        log_key: str | None = None,
        start_step: int = 0,
    ) -> None:
        if not isinstance(attr, str) or not attr or not all(p.isidentifier() for p in attr.split(".")):
            raise MisconfigurationException(
                f"`attr` must be an attribute name of the LightningModule, optionally dotted"
                f" (e.g. 'iou_threshold' or 'reward_ctx.iou_threshold'), got {attr!r}."
            )
        milestones = [float(m) for m in milestones]
        values = [float(v) for v in values]
        if any(not 0.0 < m < 1.0 for m in milestones) or any(
            a >= b for a, b in zip(milestones[:-1], milestones[1:], strict=True)
        ):
            raise MisconfigurationException(
                "`milestones` must be strictly increasing fractions of training in the open interval (0, 1),"
                f" got {milestones}."
            )
        if len(values) != len(milestones) + 1:
            raise MisconfigurationException(
                f"`values` needs one entry per stage, i.e. len(milestones) + 1 = {len(milestones) + 1},"
                f" got {len(values)}: {values}."
            )
        if not all(math.isfinite(v) for v in values):
            raise MisconfigurationException(f"`values` must all be finite numbers, got {values}.")
        if not isinstance(start_step, int) or start_step < 0:
            raise MisconfigurationException(f"`start_step` must be a non-negative integer, got {start_step!r}.")
        self.attr = attr
        self.start_step = start_step
        self.milestones = milestones
        self.values = values
        self.log_key = f"train/{attr}" if log_key is None else log_key
        self._total: float | None = None
        self._last_logged: float | None = None
        self._loaded: dict[str, Any] = {}

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(attr=self.attr)

    def value_at(self, progress: float) -> float:
        """The scheduled value at a fraction of training (milestones are inclusive lower bounds)."""
        return self.values[bisect.bisect_right(self.milestones, progress)]

    def _total_steps(self, trainer: pl.Trainer) -> float:
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return float(trainer.max_steps)
        return float(trainer.estimated_stepping_batches)

    def _progress(self, trainer: pl.Trainer) -> float:
        total = self._total_steps(trainer)
        if not math.isfinite(total) or total <= 0:
            raise MisconfigurationException(
                f"{type(self).__name__}({self.attr!r}) schedules over training progress, but the total number"
                f" of steps is unknown (estimated_stepping_batches={total}). Set `Trainer(max_steps=...)`."
            )
        span = total - self.start_step
        if span <= 0:
            raise MisconfigurationException(
                f"{type(self).__name__}({self.attr!r}): start_step={self.start_step} leaves no steps to schedule"
                f" over (total {total:g})."
            )
        return max(0, trainer.global_step - self.start_step) / span

    def _resolve(self, pl_module: pl.LightningModule) -> tuple[Any, str]:
        *parents, name = self.attr.split(".")
        target: Any = pl_module
        for i, part in enumerate(parents):
            if not hasattr(target, part):
                path = ".".join(parents[: i + 1])
                raise MisconfigurationException(
                    f"{type(self).__name__} sets `pl_module.{self.attr}`, but `pl_module.{path}` does not exist."
                )
            target = getattr(target, part)
        return target, name

    def _apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        value = self.value_at(self._progress(trainer))
        target, name = self._resolve(pl_module)
        setattr(target, name, value)
        return value

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # checked here rather than in setup: `configure_model` (after setup) may create the attribute
        target, name = self._resolve(pl_module)
        if not hasattr(target, name):
            raise MisconfigurationException(
                f"{type(self).__name__} sets `pl_module.{self.attr}`, but the module has no such attribute."
                f" Define it in the module's __init__ (e.g. `self.{self.attr} = {self.values[0]}`) or pass the"
                " attribute the module actually reads as `attr`."
            )

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._total = self._total_steps(trainer)
        self._last_logged = None
        if self._loaded:
            old = self._loaded
            old_total = old["total_steps"] if old["total_steps"] is not None else self._total
            if (old["milestones"], old["values"], old_total, old["start_step"]) != (
                self.milestones, self.values, self._total, self.start_step
            ):
                rank_zero_warn(
                    f"{type(self).__name__}({self.attr!r}): the checkpoint ran with milestones={old['milestones']},"
                    f" values={old['values']}, total_steps={old_total}, start_step={old['start_step']}; resuming"
                    f" with milestones={self.milestones}, values={self.values}, total_steps={self._total},"
                    f" start_step={self.start_step}. The new schedule applies."
                )
            self._loaded = {}
        self._apply(trainer, pl_module)

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        previous = self._last_logged
        value = self._apply(trainer, pl_module)
        if self.log_key and (value != previous or is_logging_batch(trainer, None)):
            self._last_logged = value
            for logger in trainer.loggers:
                logger.log_metrics({self.log_key: value}, step=logger_step(trainer))

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._apply(trainer, pl_module)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "attr": self.attr,
            "milestones": list(self.milestones),
            "values": list(self.values),
            "total_steps": self._total,
            "start_step": self.start_step,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = {
            "milestones": [float(m) for m in state_dict.get("milestones", self.milestones)],
            "values": [float(v) for v in state_dict.get("values", self.values)],
            "total_steps": state_dict.get("total_steps"),
            "start_step": int(state_dict.get("start_step", 0)),
        }
