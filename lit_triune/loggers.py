"""Lightning's TensorBoardLogger without its placeholder tags, so a run's scalars are only its own."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from typing_extensions import override


class TriuneTensorBoardLogger(TensorBoardLogger):
    """A :class:`~lightning.pytorch.loggers.TensorBoardLogger` that writes no ``hp_metric`` and no ``epoch``.

    Lightning logs ``hp_metric = -1`` as a placeholder (``default_hp_metric``, off here by default) and
    adds ``epoch`` to every ``self.log`` call; runs here are bounded by optimizer steps over an endless
    mix of sources, so an epoch chart only adds clutter. Everything else is Lightning's.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(max_steps=10, logger=TriuneTensorBoardLogger("runs", name="tiny"))
    """

    def __init__(
        self,
        save_dir: str | Path,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = False,
        prefix: str = "",
        sub_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(save_dir, name=name, version=version, log_graph=log_graph,
                         default_hp_metric=default_hp_metric, prefix=prefix, sub_dir=sub_dir, **kwargs)

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)
