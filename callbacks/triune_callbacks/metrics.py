"""Per-source sums and counts as one torchmetrics state, so a DDP sync is one collective."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

OTHER = "other"
ALL = "all"


class SourceStats(Metric):
    """Mean of several per-sample statistics for each of a fixed list of data sources.

    All sums and counts live in ONE state tensor ``stats`` of shape ``[S + 1, C, 2]`` (S sources plus
    an ``other`` bucket for sources not in the list, C statistics, (sum, count)), reduced with
    ``"sum"``. A DDP sync is therefore one gather of one fixed-shape tensor, however many sources and
    statistics there are, and every rank computes the same result. NaN entries are skipped (not
    counted), which is how "not applicable" is spelled (IoU of a math sample).

    Args:
        sources: Data sources to keep apart, in a fixed order; others go to ``other``.
        columns: Names of the C statistics.
        kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: If ``sources`` or ``columns`` is empty or holds duplicates, or a source is
            named ``"other"`` or ``"all"``.
    """

    higher_is_better = None  # mixed statistics: accuracy up, truncation down
    full_state_update = False  # update() never reads the accumulated state
    stats: Tensor

    def __init__(self, sources: Sequence[str], columns: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sources = list(sources)
        self.columns = list(columns)
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError(f"`sources` must be a non-empty list of distinct names, got {self.sources}.")
        if OTHER in self.sources or ALL in self.sources:
            raise ValueError(f"Source names {OTHER!r} and {ALL!r} are reserved, got {self.sources}.")
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError(f"`columns` must be a non-empty list of distinct names, got {self.columns}.")
        self._index = {s: i for i, s in enumerate(self.sources)}
        self.add_state(
            "stats", default=torch.zeros(len(self.sources) + 1, len(self.columns), 2), dist_reduce_fx="sum"
        )

    def source_index(self, data_sources: Sequence[str]) -> Tensor:
        """Bucket index of each sample: position in ``sources``, or ``S`` (``other``). Long ``[N]``."""
        other = len(self.sources)
        return torch.tensor(
            [self._index.get(s, other) for s in data_sources], dtype=torch.long, device=self.device
        )

    def update(self, values: Tensor, source_idx: Tensor) -> None:
        """Adds a batch of samples.

        Args:
            values: Float ``[N, C]``, one column per statistic; NaN where not applicable.
            source_idx: Long ``[N]``, bucket of each sample (see :meth:`source_index`).
        """
        values = values.to(self.stats.dtype)  # [N, C]
        valid = ~torch.isnan(values)  # [N, C]
        pair = torch.stack([torch.where(valid, values, 0.0), valid.to(values.dtype)], dim=-1)  # [N, C, 2]
        self.stats.index_add_(0, source_idx.to(self.stats.device), pair)

    def compute(self) -> dict[str, Tensor]:
        """Returns ``mean`` and ``count``, float ``[S + 2, C]`` with rows ``sources + [other, all]``.

        ``mean`` is NaN where ``count`` is 0.
        """
        stats = torch.cat([self.stats, self.stats.sum(0, keepdim=True)])  # [S + 2, C, 2]
        total, count = stats.unbind(-1)  # [S + 2, C] each
        mean = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
        return {"mean": mean, "count": count}

    @property
    def row_names(self) -> list[str]:
        """Row labels of :meth:`compute`'s tensors."""
        return [*self.sources, OTHER, ALL]
