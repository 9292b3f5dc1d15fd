"""Source-level metric monitoring (V-Triune's third idea) as a callback."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor
from typing_extensions import override

from triune_callbacks._trainer_steps import is_logging_batch, logger_step
from triune_callbacks.metrics import SourceStats
from triune_callbacks.scalars_layout import source_layout, write_layout

DEFAULT_REFLECTION_WORDS = (
    "re-check", "re-evaluate", "re-examine", "re-think", "recheck", "reevaluate", "reexamine",
    "reevaluation", "rethink", "check again", "think again", "try again", "verify", "wait", "yet",
)  # fmt: skip

_BASE_COLUMNS = (
    "reward", "accuracy", "format", "response_length", "response_length_correct", "response_length_wrong",
    "truncation_ratio", "reflection_ratio", "accuracy_reflection", "accuracy_no_reflection",
    "iou", "precision", "recall", "map", "verifier_failure_ratio", "samples",
)  # fmt: skip


def reflection_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """Case-insensitive pattern matching any of ``words`` as whole words.

    A match may not touch a letter, digit, underscore or hyphen on either side, so ``wait`` matches
    "Wait," but not "await" or "waiting", and ``re-check`` does not match inside "pre-check".
    Spaces inside a phrase match any run of whitespace ("check  again").
    """
    alternatives = sorted((r"\s+".join(map(re.escape, w.split())) for w in words), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])", re.IGNORECASE)


def _check_sources(sources: Sequence[str]) -> list[str]:
    sources = list(sources)
    if not sources or len(set(sources)) != len(sources):
        raise MisconfigurationException(f"`sources` must be a non-empty list of distinct names, got {sources}.")
    bad = [s for s in sources if not isinstance(s, str) or not s or "/" in s or s in ("other", "all")]
    if bad:
        raise MisconfigurationException(
            f"Source names must be non-empty strings without '/', and 'other' and 'all' are reserved;"
            f" got {bad} in {sources}."
        )
    return sources


def datamodule_sources(trainer: pl.Trainer) -> list[str]:
    """``trainer.datamodule.source_names`` (a list, or a method returning one), duck-typed: any
    LightningDataModule that names its sources works, and nothing here imports its package."""
    datamodule = getattr(trainer, "datamodule", None)
    names = getattr(datamodule, "source_names", None)
    if callable(names):
        names = names()
    if names is None:
        raise MisconfigurationException(
            "SourceMetrics(sources=None) takes its sources from `trainer.datamodule.source_names`, but"
            f" {type(datamodule).__name__ if datamodule is not None else 'this trainer'} has none:"
            " pass `sources=[...]`, or give the datamodule a `source_names` list."
        )
    return [str(n) for n in names]


class SourceMetrics(Callback):
    """Per-``data_source`` rollout metrics for training and validation, logged under stable names.

    A mixed run hides a collapsing source inside a healthy average, so every statistic is kept per
    source (a fixed list; unlisted sources land in ``other``) plus an ``all`` aggregate. With
    ``sources=None`` the list is read at ``setup`` from the trainer's datamodule, duck-typed: its
    ``source_names`` attribute (a list of names, or a method returning one); a datamodule without it
    is an error that says to pass ``sources``. Each sample is
    read from the record dict ``outputs[output_key]`` that ``training_step`` / ``validation_step``
    return (docs/interfaces.md, "Per-sample rollout records"):

    - required: ``data_source`` (list[str], N), ``reward`` (float, N);
    - optional: ``accuracy``, ``format`` (float, N), ``response_length`` (int, N), ``truncated``,
      ``verifier_failure`` (bool, N), ``response`` (list[str], N), ``iou``, ``precision``, ``recall``,
      ``map`` (float, N; NaN where not applicable). A missing key only leaves its statistics out.

    Logged as ``<prefix>/<statistic>/<source>``, ``<source>`` in ``sources + ["other", "all"]``, only
    where the window had samples: ``reward``, ``accuracy``, ``format``, ``response_length``,
    ``response_length_correct``, ``response_length_wrong`` (a sample is correct when
    ``accuracy >= correct_threshold``), ``truncation_ratio``, ``reflection_ratio`` (responses with any
    reflection word, see :func:`reflection_pattern`), ``accuracy_reflection``,
    ``accuracy_no_reflection``, ``iou``, ``precision``, ``recall``, ``map``, ``iou@<t>`` (share of
    samples with IoU >= t, for each of ``iou_thresholds``), ``verifier_failure_ratio`` and
    ``samples`` (samples in the window: beside accuracy it tells a collapsed source apart).

    Training metrics are accumulated over ``log_every_n_steps`` batches, then synced, written to the
    loggers at Lightning's logger step and reset (a last partial window is flushed at train end).
    Validation metrics cover the whole epoch and are logged with ``pl_module.log`` at epoch end, so
    ``ModelCheckpoint(monitor="val/accuracy/all")`` works; sanity-check results are discarded.
    With a :class:`~lightning.pytorch.loggers.TensorBoardLogger` (and ``tensorboard_layout``), a custom-scalars
    layout (:func:`~triune_callbacks.scalars_layout.source_layout`) puts each statistic of each prefix on one
    chart with all sources overlaid; it is rewritten whenever a statistic is logged for the first time.
    Under DDP each compute is one sync of one ``[S + 1, C, 2]`` tensor (:class:`~triune_callbacks.metrics.SourceStats`)
    and all ranks log the same numbers; the values are already reduced, so Lightning's hint to pass
    ``sync_dist=True`` is silenced for this callback's own keys.

    Resume: the checkpoint holds the open training window (its ``[S + 1, C, 2]`` sums and the number
    of batches in it) under :attr:`state_key`, so the first window after a resume covers the same
    batches, and logs the same values, as in an uninterrupted run. Under DDP ``state_dict`` stores the
    window summed over ranks (one collective: Lightning calls it on every rank when it dumps a
    checkpoint, and only rank 0 writes the file); on resume global rank 0 gets that sum and the other
    ranks start from zeros, so the next synced compute equals the uninterrupted one, whatever the new
    world size. Checkpoints without this state (older ones, or a changed ``sources``/statistics list,
    which warns) start an empty window, as before.

    Args:
        sources: Data sources to report separately, e.g. ``["mm_math", "v3det", "refcoco"]``; ``None``:
            ``trainer.datamodule.source_names`` at setup.
        output_key: Key of the record dict in the step output.
        log_prefix_train: Prefix of training metrics; ``None`` disables them.
        log_prefix_val: Prefix of validation metrics; ``None`` disables them.
        log_every_n_steps: Training batches per window; ``None`` follows ``Trainer(log_every_n_steps)``.
        reflection_words: Words that mark a reflective response; ``None`` uses V-Triune's list.
        correct_threshold: Accuracy at or above which a sample counts as correct.
        iou_thresholds: IoU thresholds in ``(0, 1]`` for the ``iou@<t>`` ratios.
        tensorboard_layout: Write the custom-scalars layout to TensorBoard loggers.

    Raises:
        MisconfigurationException: On an empty or duplicate source list, a reserved or ``/``-containing
            source name, an empty ``output_key`` or prefix, ``log_every_n_steps < 1``, an empty
            reflection word, or thresholds out of range; during training if a step output lacks the
            record or a record key has the wrong length. A step whose output maps ``output_key`` to
            ``None`` ran no rollout (e.g. a supervised step) and is skipped.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from triune_callbacks import SourceMetrics
        >>> metrics = SourceMetrics(sources=["mm_math", "v3det", "refcoco"], log_every_n_steps=10)
        >>> trainer = Trainer(max_steps=100, callbacks=[metrics])
    """

    def __init__(
        self,
        sources: Sequence[str] | None = None,
        output_key: str = "rollout",
        log_prefix_train: str | None = "train",
        log_prefix_val: str | None = "val",
        log_every_n_steps: int | None = None,
        reflection_words: Sequence[str] | None = None,
        correct_threshold: float = 0.5,
        iou_thresholds: Sequence[float] = (0.5, 0.75),
        tensorboard_layout: bool = True,
    ) -> None:
        if sources is not None:
            sources = _check_sources(sources)
        if not output_key:
            raise MisconfigurationException(f"`output_key` must be a non-empty string, got {output_key!r}.")
        for name, prefix in (("log_prefix_train", log_prefix_train), ("log_prefix_val", log_prefix_val)):
            if prefix is not None and (not prefix or prefix.endswith("/")):
                raise MisconfigurationException(
                    f"`{name}` must be None (disabled) or a non-empty prefix without a trailing '/', got {prefix!r}."
                )
        if log_every_n_steps is not None and log_every_n_steps < 1:
            raise MisconfigurationException(
                f"`log_every_n_steps` must be None (follow the Trainer) or >= 1, got {log_every_n_steps}."
            )
        words = list(DEFAULT_REFLECTION_WORDS if reflection_words is None else reflection_words)
        if not words or any(not isinstance(w, str) or not w.strip() for w in words):
            raise MisconfigurationException(f"`reflection_words` must be non-empty strings, got {words}.")
        if not 0.0 <= correct_threshold <= 1.0:
            raise MisconfigurationException(
                f"`correct_threshold` must lie in [0, 1], got {correct_threshold}."
            )
        iou_thresholds = [float(t) for t in iou_thresholds]
        if any(not 0.0 < t <= 1.0 for t in iou_thresholds) or len(set(iou_thresholds)) != len(iou_thresholds):
            raise MisconfigurationException(
                f"`iou_thresholds` must be distinct values in (0, 1], got {iou_thresholds}."
            )

        self.output_key = output_key
        self.log_prefix_train = log_prefix_train
        self.log_prefix_val = log_prefix_val
        self.log_every_n_steps = log_every_n_steps
        self.reflection_words = words
        self.correct_threshold = float(correct_threshold)
        self.iou_thresholds = iou_thresholds
        self.columns = [*_BASE_COLUMNS, *(f"iou@{t:g}" for t in iou_thresholds)]
        self._col = {c: i for i, c in enumerate(self.columns)}
        self._reflection = reflection_pattern(words)
        self.sources: list[str] | None = None
        if sources is not None:
            self._set_sources(sources)
        self._pending_batches = 0
        self._loaded: dict[str, Any] | None = None  # open training window from a checkpoint
        self.last_logged: dict[str, dict[str, float]] = {}
        self.tensorboard_layout = tensorboard_layout
        self._charted: dict[str, list[str]] = {}  # prefix -> statistics in the written layout

    def _set_sources(self, sources: list[str]) -> None:
        self.sources = sources
        self.train_stats = SourceStats(sources, self.columns)
        self.val_stats = SourceStats(sources, self.columns)

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            prefixes=(self.log_prefix_train, self.log_prefix_val), key=self.output_key
        )

    # ---------------------------------------------------------------- checkpoint state
    @override
    def state_dict(self) -> dict[str, Any]:
        """The open training window, summed over ranks.

        Collective under DDP when the window is not empty: call it on every rank, as Lightning's
        ``Trainer.save_checkpoint`` does (``_call_callbacks_state_dict`` in ``dump_checkpoint``, which
        runs on all ranks; ``weights_only`` checkpoints skip it on all ranks alike).
        """
        if self.log_prefix_train is None or self.sources is None:  # sources=None before setup: no window yet
            return {}
        stats = self.train_stats
        if self._pending_batches == 0:  # the same on every rank: all skip the collective together
            window = torch.zeros_like(stats.stats, device="cpu")
        else:
            with stats.sync_context(should_sync=True, should_unsync=True):
                window = stats.stats.detach().to("cpu", copy=True)  # [S + 1, C, 2], sum over ranks
        return {
            "train_window": window,
            "pending_batches": self._pending_batches,
            "sources": list(self.sources),
            "columns": list(self.columns),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keeps the window until ``on_train_start`` (which knows the rank and device)."""
        window = state_dict.get("train_window")
        if window is None or self.log_prefix_train is None:
            return
        if state_dict.get("sources") != self.sources or state_dict.get("columns") != self.columns:
            rank_zero_warn(
                f"{type(self).__name__}: the checkpoint's open training window has sources"
                f" {state_dict.get('sources')} and statistics {state_dict.get('columns')}; this run has"
                f" {self.sources} and {self.columns}. The first window after the resume starts empty."
            )
            return
        self._loaded = {"window": window, "pending_batches": int(state_dict.get("pending_batches", 0))}

    # ---------------------------------------------------------------- record -> [N, C] tensor
    def _record(self, outputs: Any, stage: str) -> Mapping[str, Any] | None:
        if isinstance(outputs, Mapping) and self.output_key in outputs and outputs[self.output_key] is None:
            return None  # the step ran no rollout (e.g. a supervised warm-start step): nothing to count
        record = outputs.get(self.output_key) if isinstance(outputs, Mapping) else None
        if not isinstance(record, Mapping):
            got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise MisconfigurationException(
                f"SourceMetrics(output_key={self.output_key!r}) needs {stage}_step to return a dict whose"
                f" {self.output_key!r} entry is the per-sample record dict (docs/interfaces.md); got {got}."
                f" Set log_prefix_{'val' if stage == 'validation' else 'train'}=None to skip this stage."
            )
        for key in ("data_source", "reward"):
            if key not in record:
                raise MisconfigurationException(f"The rollout record needs {key!r}; it has {sorted(record)}.")
        return record

    def _column(self, record: Mapping[str, Any], key: str, n: int, device: torch.device) -> Tensor | None:
        if key not in record or record[key] is None:
            return None
        value = torch.as_tensor(record[key]).to(device=device, dtype=torch.float32).reshape(-1)  # [N]
        if value.numel() != n:
            raise MisconfigurationException(
                f"Rollout record key {key!r} has {value.numel()} entries but 'data_source' has {n}."
            )
        return value

    def values_from_record(self, record: Mapping[str, Any], device: torch.device | str = "cpu") -> Tensor:
        """Per-sample statistics of one record, float ``[N, C]`` in :attr:`columns` order (NaN = n/a)."""
        n = len(record["data_source"])
        out = torch.full((n, len(self.columns)), float("nan"), device=device)  # [N, C]
        nan = torch.tensor(float("nan"), device=device)

        def put(col: str, value: Tensor | None) -> None:
            if value is not None:
                out[:, self._col[col]] = value

        put("samples", torch.ones(n, device=device))  # logged as a count, not a mean
        reward = self._column(record, "reward", n, device)
        accuracy = self._column(record, "accuracy", n, device)
        length = self._column(record, "response_length", n, device)
        iou = self._column(record, "iou", n, device)
        put("reward", reward)
        put("accuracy", accuracy)
        put("format", self._column(record, "format", n, device))
        put("response_length", length)
        put("truncation_ratio", self._column(record, "truncated", n, device))
        put("verifier_failure_ratio", self._column(record, "verifier_failure", n, device))
        for key in ("iou", "precision", "recall", "map"):
            put(key, self._column(record, key, n, device))
        if accuracy is not None and length is not None:
            correct = accuracy >= self.correct_threshold  # [N] bool
            put("response_length_correct", torch.where(correct, length, nan))
            put("response_length_wrong", torch.where(correct, nan, length))
        if record.get("response") is not None:
            responses = record["response"]
            if len(responses) != n:
                raise MisconfigurationException(
                    f"Rollout record key 'response' has {len(responses)} entries but 'data_source' has {n}."
                )
            reflect = torch.tensor(
                [bool(self._reflection.search(r or "")) for r in responses], dtype=torch.bool, device=device
            )  # [N]
            put("reflection_ratio", reflect.float())
            if accuracy is not None:
                put("accuracy_reflection", torch.where(reflect, accuracy, nan))
                put("accuracy_no_reflection", torch.where(reflect, nan, accuracy))
        if iou is not None:
            for t in self.iou_thresholds:
                put(f"iou@{t:g}", torch.where(torch.isnan(iou), nan, (iou >= t).float()))
        return out

    def _update(self, stats: SourceStats, pl_module: pl.LightningModule, outputs: Any, stage: str) -> None:
        if stats.device != pl_module.device:
            stats.to(pl_module.device)
        record = self._record(outputs, stage)
        if record is None:
            return
        stats.update(self.values_from_record(record, stats.device), stats.source_index(record["data_source"]))

    def _compute(self, stats: SourceStats, prefix: str) -> dict[str, float]:
        """Syncs (collective: call on every rank), flattens to ``{tag: value}`` and resets."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
            result = stats.compute()
        stats.reset()
        mean, count = result["mean"].tolist(), result["count"].tolist()
        metrics: dict[str, float] = {}
        samples_col = self._col["samples"]
        for r, row in enumerate(stats.row_names):
            for c, col in enumerate(self.columns):
                if count[r][c] > 0 and not math.isnan(mean[r][c]):
                    metrics[f"{prefix}/{col}/{row}"] = count[r][c] if c == samples_col else mean[r][c]
        self.last_logged[prefix] = metrics
        return metrics

    def _update_layout(self, trainer: pl.Trainer, prefix: str, metrics: Mapping[str, float]) -> None:
        """Rewrites the custom-scalars layout when ``metrics`` hold a statistic it has no chart for."""
        if not self.tensorboard_layout:
            return
        logged = {tag.split("/")[-2] for tag in metrics}
        charted = self._charted.get(prefix, [])
        if logged <= set(charted):
            return
        self._charted[prefix] = [c for c in self.columns if c in logged or c in charted]  # column order
        write_layout(trainer, source_layout(self._charted))

    # ---------------------------------------------------------------- hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.sources is None:  # before Lightning restores a checkpoint, so load_state_dict sees them
            self._set_sources(_check_sources(datamodule_sources(trainer)))
        if self.log_prefix_val is not None:  # values are synced by SourceStats already
            warnings.filterwarnings(
                "ignore",
                message=re.escape(f"It is recommended to use `self.log('{self.log_prefix_val}/"),
                category=PossibleUserWarning,
            )

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # runs after Lightning restored the checkpoint (load_state_dict)
        loaded, self._loaded = self._loaded, None
        self.train_stats.reset()
        self.train_stats.to(pl_module.device)
        self._pending_batches = 0
        if loaded is not None:
            if trainer.global_rank == 0:  # the window is the sum over the old ranks: count it once
                stats = self.train_stats.stats
                self.train_stats.stats = loaded["window"].to(device=stats.device, dtype=stats.dtype)
            self._pending_batches = loaded["pending_batches"]

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.log_prefix_train is None:
            return
        self._update(self.train_stats, pl_module, outputs, "training")
        self._pending_batches += 1
        if is_logging_batch(trainer, self.log_every_n_steps):
            self._log_train(trainer, self.log_prefix_train, logger_step(trainer))

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.log_prefix_train is not None and self._pending_batches > 0:
            # Lightning has counted the last batch already; log at that batch's step
            self._log_train(trainer, self.log_prefix_train, max(logger_step(trainer) - 1, 0))

    def _log_train(self, trainer: pl.Trainer, prefix: str, step: int) -> None:
        metrics = self._compute(self.train_stats, prefix)
        self._pending_batches = 0
        self._update_layout(trainer, prefix, metrics)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.val_stats.reset()

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.log_prefix_val is not None:
            self._update(self.val_stats, pl_module, outputs, "validation")

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.log_prefix_val is None:
            return
        metrics = self._compute(self.val_stats, self.log_prefix_val)
        if not trainer.sanity_checking and metrics:
            self._update_layout(trainer, self.log_prefix_val, metrics)
            pl_module.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=False, batch_size=1)
