"""V-Triune's dynamic IoU reward threshold as a callback."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch.utilities.exceptions import MisconfigurationException

from triune_callbacks.scheduled_value import ScheduledValue


class DynamicIoUThreshold(ScheduledValue):
    """Raises the IoU threshold that box rewards use as training progresses (arXiv 2505.18129, §3.3).

    Early training gets reward signal from loose boxes, late training is pushed to precision. The
    defaults are the paper's: 0.85 for the first 10 % of the steps, 0.95 until 25 %, then 0.99.
    The threshold is written to ``pl_module.<attr>``, which the trainer passes to every verifier
    call; a milestone belongs to the stage it opens (at exactly 10 % the threshold is already 0.95).
    See :class:`~triune_callbacks.ScheduledValue` for progress, resume and logging.

    Args:
        attr: Attribute of the LightningModule that holds the threshold (dotted names allowed).
        milestones: Strictly increasing fractions of training in ``(0, 1)``.
        values: ``len(milestones) + 1`` thresholds in ``(0, 1]``.
        log_key: Logged name; ``""`` turns logging off.
        start_step: Steps before the schedule starts (e.g. a supervised warm-start): fractions count the
            remaining steps.

    Raises:
        MisconfigurationException: On the conditions of :class:`~triune_callbacks.ScheduledValue`, or if a
            threshold is outside ``(0, 1]``.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from triune_callbacks import DynamicIoUThreshold
        >>> iou = DynamicIoUThreshold()
        >>> trainer = Trainer(max_steps=1000, callbacks=[iou], logger=False)
        >>> [iou.value_at(p) for p in (0.0, 0.1, 0.2, 0.25, 0.9)]
        [0.85, 0.95, 0.95, 0.99, 0.99]
    """

    def __init__(
        self,
        attr: str = "iou_threshold",
        milestones: Sequence[float] = (0.1, 0.25),
        values: Sequence[float] = (0.85, 0.95, 0.99),
        log_key: str | None = "train/iou_threshold",
        start_step: int = 0,
    ) -> None:
        super().__init__(attr=attr, milestones=milestones, values=values, log_key=log_key, start_step=start_step)
        if not all(0.0 < v <= 1.0 for v in self.values):
            raise MisconfigurationException(f"IoU thresholds must lie in (0, 1], got values={self.values}.")
