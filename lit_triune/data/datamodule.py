"""TriuneDataModule: shards (or generated synthetic tasks) -> PromptBatch, split, mixed, resumable.

Constructor arguments are typed plain values so LightningCLI builds it from YAML::

    data:
      class_path: lit_triune.data.TriuneDataModule
      init_args:
        synthetic: {counting: 2000, detection: 2000}   # generated into cache_dir by prepare_data
        train: {orsta_math: /data/orsta/math}          # or shard dirs/globs per source
        weights: {synthetic_counting: 2.0}
        val_synthetic: {counting: 64, ocr: 64}
        batch_size: 4
        model_path: tiny
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from lit_triune.data.batch import PromptBuilder
from lit_triune.data.shards import ShardError, ShardWriter, resolve_shards
from lit_triune.data.stream import ShardStream, Source
from lit_triune.data.synthetic import DIFFICULTIES, GENERATOR_VERSION, TASKS, check_layout, iter_samples
from lit_triune.data.tracker import StreamTracker, TrackingLoader
from lit_triune.rewards.worker import die_with_parent

_VAL_SEED_OFFSET = 1_000_003  # validation sets are generated from a different seed than training


def synthetic_dir(cache_dir: str | Path, task: str, n: int, seed: int, difficulty: str, image_size: int,
                  layout: str = "image_first") -> Path:
    suffix = "" if layout == "image_first" else f"-{layout}"  # image-first caches keep their names
    name = f"{task}-{difficulty}-n{n}-s{seed}-px{image_size}-v{GENERATOR_VERSION}{suffix}"
    return Path(cache_dir).expanduser() / "synthetic" / name


def write_synthetic(out: Path, task: str, n: int, seed: int, difficulty: str, image_size: int,
                    shard_size: int = 256, layout: str = "image_first") -> Path:
    """Generate once into a temp dir and rename, so concurrent or interrupted runs never see half a set."""
    if (out / "manifest.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    with ShardWriter(tmp, prefix=task, max_count=shard_size) as writer:
        for sample in iter_samples(task, n, seed=seed, difficulty=difficulty, image_size=image_size, layout=layout):
            writer.write(sample)
    try:
        os.rename(tmp, out)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _resolve_model_path(model_path: str | None) -> str | None:
    """None keeps the built-in Qwen template; anything else is a directory, a preset or a Hub id."""
    from lit_triune.models.paths import resolve_model_path

    return None if model_path is None else resolve_model_path(model_path)


class TriuneDataModule(pl.LightningDataModule):
    """Streams prompt batches for GRPO from WebDataset shards; every sample carries its reward spec.

    Args:
        train: source name -> shard directory, glob, or list of them.
        weights: source name -> mixing weight (default 1.0 each: equal share per source).
        synthetic: task -> sample count; shards generated into `cache_dir` by `prepare_data`,
            as sources named `synthetic_<task>`. Tasks: counting, detection, grounding, ocr, math, chart, puzzle.
        synthetic_difficulty: "easy" (learnable by the tiny CPU model), "medium" or "hard".
        synthetic_layout: "image_first" (`<image>question`) or "question_first" (`question<image>`: the
            image tokens can read the question; the tiny model learns grounding only this way, docs/data.md);
            or a task -> layout map, tasks not named image-first (`{grounding: question_first}`).
        val: validation sources (may include sources absent from training); one unshuffled pass.
        val_synthetic: task -> count for validation, generated from a different seed.
        batch_size: prompts per step (B); each is expanded to G rollouts downstream.
        val_batch_size: defaults to batch_size.
        num_workers: DataLoader worker processes; shards are split over rank x worker.
        seed: fixes order, mixing and CoT template draws.
        min_pixels: smallest image area in pixels after resizing; None -> the processor's.
        max_pixels: largest image area in pixels after resizing; None -> the processor's.
        model_path: processor directory, tiny preset name ("tiny", "small") or Hugging Face Hub id (read from
            the Hub cache, lit_triune/models/paths.py); None -> built-in Qwen template.
        cot: draw a CoT prompt template per sample (for samples with `extra_info.question`).
        cot_sources: only these sources get CoT templates (None: all).
        cot_templates: the template pool (each with `{question}`); None -> 20 defaults.
        math_instructions: append a seeded step-by-step + answer-format instruction to `mathverify`
            prompts the CoT pool did not rewrite — what the released loader does for Orsta-Data-47k rows
            (free-form: \\boxed{} only; closed-form: <think>/<answer> with a boxed answer).
        cache_dir: where synthetic shards are generated.
        image_size: synthetic image side in pixels.
        shard_size: samples per generated shard.
        max_bad_fraction: stop training with an error naming the source, its bad shards and the reasons when
            more than this fraction of a source's draws are skipped as unusable (per window of
            `bad_fraction_window` draws of that source by one loader worker); None: only count them.
        bad_fraction_window: that window (the first 200 draws, then every following 200).
    """

    def __init__(
        self,
        train: dict[str, str | list[str]] | None = None,
        weights: dict[str, float] | None = None,
        synthetic: dict[str, int] | None = None,
        synthetic_difficulty: str = "easy",
        synthetic_layout: str | dict[str, str] = "image_first",
        val: dict[str, str | list[str]] | None = None,
        val_synthetic: dict[str, int] | None = None,
        batch_size: int = 4,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        model_path: str | None = None,
        cot: bool = False,
        cot_sources: list[str] | None = None,
        cot_templates: list[str] | None = None,
        math_instructions: bool = False,
        cache_dir: str = "~/.cache/lit-triune/data",
        image_size: int = 112,
        shard_size: int = 256,
        max_bad_fraction: float | None = 0.2,
        bad_fraction_window: int = 200,
    ) -> None:
        super().__init__()
        for spec_name, spec in (("synthetic", synthetic), ("val_synthetic", val_synthetic)):
            for task, n in (spec or {}).items():
                if task not in TASKS:
                    raise ValueError(f"{spec_name}: unknown task {task!r}; available: {sorted(TASKS)}")
                if not isinstance(n, int) or n < 1:
                    raise ValueError(f"{spec_name}[{task!r}] must be a positive sample count, got {n!r}")
        if synthetic_difficulty not in DIFFICULTIES:
            raise ValueError(f"synthetic_difficulty must be one of {DIFFICULTIES}, got {synthetic_difficulty!r}")
        layouts = synthetic_layout if isinstance(synthetic_layout, dict) else {"*": synthetic_layout}
        for task, layout in layouts.items():
            if task != "*" and task not in TASKS:
                raise ValueError(f"synthetic_layout: unknown task {task!r}; available: {sorted(TASKS)}")
            check_layout(layout, "synthetic_layout")
        if not train and not synthetic:
            raise ValueError("give training data: `train` (shard dirs/globs per source) and/or `synthetic`")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"need batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
        self.save_hyperparameters()
        self.train_spec, self.weights = dict(train or {}), dict(weights or {})
        self.synthetic, self.val_synthetic = dict(synthetic or {}), dict(val_synthetic or {})
        self.val_spec = dict(val or {})
        self.difficulty, self.batch_size = synthetic_difficulty, batch_size
        self.layouts = layouts
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.min_pixels, self.max_pixels, self.model_path = min_pixels, max_pixels, model_path
        self.cot, self.cot_sources, self.cot_templates = cot, cot_sources, cot_templates
        self.math_instructions = math_instructions
        self.cache_dir, self.image_size, self.shard_size = cache_dir, image_size, shard_size
        if max_bad_fraction is not None and not 0 <= max_bad_fraction < 1:
            raise ValueError(f"max_bad_fraction must be in [0, 1) or null, got {max_bad_fraction!r}")
        if bad_fraction_window < 1:
            raise ValueError(f"bad_fraction_window must be >= 1, got {bad_fraction_window!r}")
        self.max_bad_fraction, self.bad_fraction_window = max_bad_fraction, bad_fraction_window
        unknown = set(self.weights) - self._train_names()
        if unknown:
            raise ValueError(f"weights name unknown sources {sorted(unknown)}; training sources: {sorted(self._train_names())}")
        self.rank, self.world_size = 0, 1
        self._resume: dict[str, Any] | None = None
        self._tracker: StreamTracker | None = None
        self._progress_at_iter: int | None = None
        self.train_sources: list[Source] = []
        self.val_sources: list[Source] = []
        self.builder: PromptBuilder | None = None

    @property
    def source_names(self) -> list[str]:
        """Every data source this module yields: training sources, then validation-only ones, each sorted.
        SourceMetrics(sources=None) reads it, so metrics are kept per source without listing them twice."""
        train = sorted(self._train_names())
        val = set(self.val_spec) | {f"synthetic_{t}" for t in self.val_synthetic}
        return train + sorted(val - set(train))

    def _train_names(self) -> set[str]:
        return set(self.train_spec) | {f"synthetic_{t}" for t in self.synthetic}

    def _synthetic_dirs(self, spec: dict[str, int], seed: int) -> dict[str, Path]:
        return {f"synthetic_{t}": synthetic_dir(self.cache_dir, t, n, seed, self.difficulty, self.image_size,
                                                self.layout(t)) for t, n in spec.items()}

    def layout(self, task: str) -> str:
        """The prompt layout of a synthetic task (`synthetic_layout`)."""
        return self.layouts.get(task, self.layouts.get("*", "image_first"))

    def prepare_data(self) -> None:
        for spec, seed in ((self.synthetic, self.seed), (self.val_synthetic, self.seed + _VAL_SEED_OFFSET)):
            for task, n in spec.items():
                layout = self.layout(task)
                out = synthetic_dir(self.cache_dir, task, n, seed, self.difficulty, self.image_size, layout)
                write_synthetic(out, task, n, seed, self.difficulty, self.image_size, self.shard_size, layout)

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None:  # Lightning does not set RANK for WebDataset's splitter; ask the trainer
            self.rank, self.world_size = self.trainer.global_rank, self.trainer.world_size
        if self.builder is None:
            self.builder = PromptBuilder(_resolve_model_path(self.model_path), min_pixels=self.min_pixels,
                                         max_pixels=self.max_pixels, cot=self.cot, cot_sources=self.cot_sources,
                                         cot_templates=self.cot_templates, seed=self.seed,
                                         math_instructions=self.math_instructions)
        self.train_sources = self._sources({**self.train_spec, **self._synthetic_dirs(self.synthetic, self.seed)})
        val = {**self.val_spec, **self._synthetic_dirs(self.val_synthetic, self.seed + _VAL_SEED_OFFSET)}
        self.val_sources = self._sources(val) if val else []

    def _sources(self, spec: dict[str, Any]) -> list[Source]:
        sources = []
        for name in sorted(spec):
            try:
                paths, counts = resolve_shards([str(p) for p in spec[name]] if isinstance(spec[name], list)
                                               else str(spec[name]))
            except ShardError as err:
                raise ShardError(f"data source {name!r}: {err}") from err
            sources.append(Source(name, tuple(paths), tuple(counts), float(self.weights.get(name, 1.0))))
        return sources

    def _consumed(self) -> int | None:
        """Batches the training loop has processed since this iterator started (None outside a Trainer)."""
        loop = getattr(getattr(self.trainer, "fit_loop", None), "epoch_loop", None) if self.trainer else None
        if loop is None or self._progress_at_iter is None:
            return None
        return loop.batch_progress.total.processed - self._progress_at_iter

    def _on_train_iter(self) -> None:
        loop = getattr(getattr(self.trainer, "fit_loop", None), "epoch_loop", None) if self.trainer else None
        self._progress_at_iter = None if loop is None else loop.batch_progress.total.processed

    def train_dataloader(self) -> TrackingLoader:
        if self.builder is None:
            self.setup("fit")
        if self._tracker is not None:  # a re-iteration continues from where the last one stood
            self._resume = self._tracker.state(self._consumed())
        self._tracker = StreamTracker(self.num_workers, self.world_size, self._resume)
        stream = ShardStream(self.train_sources, self.builder, batch_size=self.batch_size, seed=self.seed,
                             rank=self.rank, world_size=self.world_size, train=True, resume=self._resume,
                             max_bad_fraction=self.max_bad_fraction, bad_fraction_window=self.bad_fraction_window)
        return TrackingLoader(stream, batch_size=None, num_workers=self.num_workers, tracker=self._tracker,
                              on_iter=self._on_train_iter, collate_fn=_identity, worker_init_fn=_worker_init())

    def val_dataloader(self) -> TrackingLoader | list:
        if self.builder is None:
            self.setup("validate")
        if not self.val_sources:
            return []
        stream = ShardStream(self.val_sources, self.builder, batch_size=self.val_batch_size, seed=self.seed,
                             rank=self.rank, world_size=self.world_size, train=False)
        return TrackingLoader(stream, batch_size=None, num_workers=self.num_workers,
                              tracker=StreamTracker(self.num_workers, self.world_size), collate_fn=_identity,
                              worker_init_fn=_worker_init())

    def test_dataloader(self) -> TrackingLoader | list:
        """`test` evaluates on the validation sets (`val`, `val_synthetic`): V-Triune reports held-out
        validation sources, in-domain and out-of-domain, rather than a separate test split."""
        return self.val_dataloader()

    def state_dict(self) -> dict[str, Any]:
        """Per-rank stream cursors; under DDP gathered from every rank so rank 0's checkpoint holds all."""
        local = self._tracker.state(self._consumed()) if self._tracker is not None else self._resume
        import torch.distributed as dist

        if self.world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, local)
            return {"version": 1, "per_rank": gathered, "seed": self.seed}
        return {"version": 1, "per_rank": [local], "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        per_rank = state.get("per_rank", [None])
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"data state was saved with seed {state.get('seed')}, this run uses seed {self.seed}")
        if len(per_rank) != self.world_size and per_rank != [None]:
            fn = getattr(getattr(getattr(self, "trainer", None), "state", None), "fn", None)
            if fn is not None and getattr(fn, "value", fn) != "fit":
                # validate/test from a checkpoint written by another number of processes (e.g. an FSDP run's
                # consolidated checkpoint on one): the training stream's position does not matter there
                self._resume, self._tracker = None, None
                return
            raise ValueError(f"data state holds {len(per_rank)} ranks, this run has world_size {self.world_size}: "
                             "an exact resume needs the same number of processes")
        self._resume = per_rank[self.rank] if per_rank != [None] else None
        self._tracker = None


def _identity(batch: Any) -> Any:
    return batch


def _worker_init() -> functools.partial:
    """DataLoader workers die with the trainer process that forked them (a SIGKILLed trainer would
    otherwise leave them, and through inherited pipes the verifier forkserver, running)."""
    return functools.partial(_die_with_loader_parent, os.getpid())


def _die_with_loader_parent(parent_pid: int, worker_id: int) -> None:
    die_with_parent(parent_pid)
