"""TensorBoard custom-scalars layout: one chart per statistic with every data source overlaid.

TensorBoard's scalars page draws one chart per tag, so ``train/accuracy/<source>`` for six sources is six
charts that cannot be compared. Its *Custom Scalars* page draws a chart per regex instead; the layout
(``SummaryWriter.add_custom_scalars``) is stored in the run's event file, and TensorBoard shows the last
one written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

Layout = dict[str, dict[str, list]]  # {category: {chart title: ["Multiline", [tag regex, ...]]}}


def source_layout(columns_by_prefix: Mapping[str, Sequence[str]]) -> Layout:
    """One category per prefix (``"train: per source"``) and in it one chart per statistic, matching the
    tags ``<prefix>/<statistic>/<source>`` of every source (``other`` and ``all`` included).

    Example::

        >>> source_layout({"train": ["accuracy"]})
        {'train: per source': {'accuracy': ['Multiline', ['^train/accuracy/[^/]+$']]}}
    """
    return {
        f"{prefix}: per source": {
            col: ["Multiline", [f"^{re.escape(prefix)}/{re.escape(col)}/[^/]+$"]] for col in columns
        }
        for prefix, columns in columns_by_prefix.items()
        if columns
    }


def write_layout(trainer: pl.Trainer, layout: Layout) -> bool:
    """Writes ``layout`` to every :class:`TensorBoardLogger` of ``trainer`` (global rank 0); True if any."""
    loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    if not trainer.is_global_zero or not loggers or not layout:
        return False
    for logger in loggers:
        logger.experiment.add_custom_scalars(layout)  # no step argument: TensorBoard keeps the last layout
    return True
