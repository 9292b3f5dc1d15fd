"""Progress a person can follow while `fit` runs, and a closing summary of where everything went.

- On a terminal, `StepProgressBar`: Lightning's tqdm bar, counting optimizer steps against
  `max_steps` (a rollout batch with k updates advances it by k), with the stage (warm-start / RL),
  reward, accuracy and loss, s/step and ETA; no `v_num`, no `Epoch 0/-2`.
- Otherwise (a pipe, a log file, a scheduler), or with `trainer.enable_progress_bar: false`,
  `MetricsLines`: one line every `Trainer(log_every_n_steps)` steps, like TRL's `logging_steps`.
- At the end of `fit`, `RunSummary`: the per-source table of the stage reports
  (`<log_dir>/stage_reports.json`), the run directory, the last checkpoint, and the commands that open
  TensorBoard, run the notebook on this run and export the policy.

`progress_callbacks` chooses among them for the CLI (lit_triune/main.py); a progress bar in the
configured callbacks is the user's choice and is left alone. All of it prints on global rank 0 only.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar, TQDMProgressBar
from typing_extensions import override

from lit_triune.rl.report_keys import SAMPLED, has_sampled

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "training_dynamics.ipynb"


def stage_name(pl_module: pl.LightningModule) -> str:
    """ "warm-start" while TriuneModule's supervised stage runs, else "RL"."""
    return "warm-start" if getattr(pl_module, "in_warm_start", False) else "RL"


def step_metrics(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
    """The few figures worth watching per step, from the module's last logged values."""
    logged = trainer.callback_metrics
    keys = ({"loss": "warm_start/loss"} if stage_name(pl_module) == "warm-start" else
            {"reward": "train/reward_mean", "accuracy": "train/accuracy_mean", "loss": "train/loss"})
    return {name: float(logged[key]) for name, key in keys.items() if key in logged}


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class StepProgressBar(TQDMProgressBar):
    """A tqdm bar over optimizer steps: `RL:  42%|####  | 168/400 [01:02<01:26, 2.70s/step, reward=0.410, ...]`."""

    # Lightning's, with tqdm's rate_fmt (s/step when slower than a step a second) instead of rate_noinv_fmt
    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

    @override
    def init_train_tqdm(self) -> Any:
        bar = super().init_train_tqdm()
        bar.unit = "step"
        return bar

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        # not super()'s: it draws an `Epoch 0` frame first; this stream is one long epoch counted in steps
        if self._leave or self._train_progress_bar is None:
            self.train_progress_bar = self.init_train_tqdm()
        bar = self.train_progress_bar
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        bar.set_description(stage_name(trainer.lightning_module), refresh=False)
        bar.reset(total=total)
        bar.initial = trainer.global_step  # resumed runs start where they stopped
        bar.n = trainer.global_step

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar is None or bar.disable or not self._should_update(step, bar.total):
            return
        bar.set_description(stage_name(pl_module), refresh=False)
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.n = step
        bar.refresh()

    @override
    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        # not super()'s: it adds `v_num` and every prog_bar metric; these are the ones to watch
        return {k: f"{v:.3f}" for k, v in step_metrics(trainer, pl_module).items()}


class MetricsLines(Callback):
    """One line every `every_n_steps` optimizer steps, for output that is not a terminal:

    `step  25/400 (6%) | warm-start | loss 1.234 | 0.21 s/step | elapsed 0:05 | ETA 1:19`

    Args:
        every_n_steps: Steps between lines; None follows `Trainer(log_every_n_steps)`.
        stream: Where to print; None means `sys.stdout` at the time of printing.
    """

    def __init__(self, every_n_steps: int | None = None, stream: TextIO | None = None) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1 or None, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.stream = stream
        self._start: tuple[int, float] = (0, 0.0)
        self._last: tuple[int, float] = (0, 0.0)

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.perf_counter()
        self._start = self._last = (trainer.global_step, now)
        log_dir = trainer.log_dir or trainer.default_root_dir  # on every rank: a broadcast under DDP/FSDP
        if not trainer.is_global_zero:
            return
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
        warm = getattr(pl_module, "hparams", {}).get("warm_start_steps")
        stages = f" (warm-start {warm}, RL {total - warm})" if warm and isinstance(total, int) else ""
        every = self.every_n_steps or trainer.log_every_n_steps
        self._print(f"training {total} steps{stages} from step {trainer.global_step}; "
                    f"a line every {every} steps; logs in {_show(log_dir)}")

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step, last_step = trainer.global_step, self._last[0]
        every = self.every_n_steps or trainer.log_every_n_steps
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if step == last_step or (step // every == last_step // every and step != total):
            return
        now = time.perf_counter()
        per_step = (now - self._last[1]) / (step - last_step)
        self._last = (step, now)
        if not trainer.is_global_zero:
            return
        parts = [f"step {step:>{len(str(total or step))}}/{total or '?'}"
                 + (f" ({100 * step // total}%)" if total else ""), stage_name(pl_module)]
        parts += [f"{k} {v:.3f}" for k, v in step_metrics(trainer, pl_module).items()]
        parts.append(f"{per_step:.2f} s/step")
        parts.append(f"elapsed {_hms(now - self._start[1])}")
        if total:
            parts.append(f"ETA {_hms((total - step) * per_step)}")
        self._print(" | ".join(parts))


def _show(path: str | os.PathLike | None) -> str:
    """A path as a user would type it here: relative to the working directory when inside it."""
    if path is None:
        return "-"
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def last_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The checkpoint a resume or an export would take: ModelCheckpoint's `last`, else its newest save."""
    candidates: list[str] = []
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            candidates += [cb.last_model_path, cb.best_model_path]
    existing = [Path(c) for c in candidates if c and Path(c).exists()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def read_stage_reports(log_dir: Path) -> dict[str, Any]:
    """`<log_dir>/stage_reports.json` ({stage: {"step", "sources": {source: {metric: value}}}}), or {}."""
    path = log_dir / "stage_reports.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def stage_table(log_dir: Path, reports: dict[str, Any] | None = None) -> list[str]:
    """Accuracy per source at each stage report, from `<log_dir>/stage_reports.json` (or `reports`, as read
    from it): greedy, and when the reports have them (`val_samples`) `greedy / mean of sampled` in each cell."""
    reports = read_stage_reports(log_dir) if reports is None else reports
    stages = list(reports)
    sources = sorted({s for r in reports.values() for s in r.get("sources", {})})
    if not sources:
        return []
    heads = [f"{stage} (step {reports[stage].get('step', '?')})" for stage in stages]
    width = max(len(s) for s in [*sources, "source"])
    lines = [f"{'source':{width}s}  " + "  ".join(f"{h:>{max(len(h), 6)}s}" for h in heads)]
    for src in sources:
        cells = []
        for stage, head in zip(stages, heads, strict=True):
            figures = reports[stage].get("sources", {}).get(src, {})
            acc, sampled = figures.get("accuracy"), figures.get(f"{SAMPLED}accuracy")
            cell = "-" if acc is None else f"{acc:.3f}" + ("" if sampled is None else f" / {sampled:.3f}")
            cells.append(f"{cell:>{max(len(head), 6)}s}")
        lines.append(f"{src:{width}s}  " + "  ".join(cells))
    return lines


def summary_lines(trainer: pl.Trainer, log_dir: str | os.PathLike) -> list[str]:
    """The closing summary of a `fit` logged to `log_dir`: what it reached, where it is, what to run next."""
    log_dir = Path(log_dir)
    q = shlex.quote
    lines = ["", "== run summary =="]
    reports = read_stage_reports(log_dir)
    table = stage_table(log_dir, reports)
    if table:
        kind = "greedy / mean of sampled completions" if has_sampled(reports) else "greedy"
        lines += [f"validation accuracy per source ({kind}; all figures in stage_reports.json):", *table, ""]
    lines.append(f"run directory:   {_show(log_dir)}")
    ckpt = last_checkpoint(trainer)
    lines.append(f"last checkpoint: {_show(ckpt) if ckpt else 'none saved'}")
    lines.append(f"TensorBoard:     tensorboard --logdir {q(_show(log_dir))}")
    if NOTEBOOK.is_file():
        lines.append(f"notebook:        LIT_TRIUNE_LOG_DIR={q(_show(log_dir))} jupyter execute {q(_show(NOTEBOOK))}"
                     f"   # figures -> {_show(log_dir / 'figures')}")
    if ckpt:
        lines.append(f"export policy:   lit-triune-export {q(_show(ckpt))} {q(_show(log_dir / 'hf'))}")
    return lines


class RunSummary(Callback):
    """Prints `summary_lines` once `fit` has finished (after the final stage report and checkpoint)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log_dir = trainer.log_dir or trainer.default_root_dir  # on every rank: a broadcast under DDP/FSDP
        if trainer.is_global_zero:
            print("\n".join(summary_lines(trainer, log_dir)), file=self.stream or sys.stdout, flush=True)


def progress_callbacks(callbacks: list[Any], enable_progress_bar: bool | None,
                       stream: TextIO | None = None) -> tuple[list[Callback], bool | None]:
    """The progress and summary callbacks to add to the configured ones, and the `enable_progress_bar`
    to pass on: the bar on a terminal, metric lines otherwise or when the bar is switched off."""
    added: list[Callback] = [] if any(isinstance(c, RunSummary) for c in callbacks) else [RunSummary()]
    if any(isinstance(c, (ProgressBar, MetricsLines)) for c in callbacks):
        return added, enable_progress_bar  # the user's own choice
    isatty = getattr(stream or sys.stdout, "isatty", lambda: False)()
    if enable_progress_bar is not False and isatty:
        return [StepProgressBar(), *added], True
    return [MetricsLines(), *added], False  # a bar written to a pipe is one long line of carriage returns
