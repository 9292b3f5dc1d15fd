"""Per-source validation figures at the stage boundaries of a run: init, after warm-start, final.

They are printed as a table (rank 0), written to TensorBoard as a markdown table (text tag
`stage_reports/<name>`; a one-point chart per figure said nothing), logged to other loggers under
`stage/<name>/<metric>/<source>` and appended to `<log_dir>/stage_reports.json`, so a user sees what each
stage added without opening TensorBoard.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.loggers import Logger, TensorBoardLogger

from lit_triune.models.sharding import full_parameters
from lit_triune.rl.records import answer_counts, answer_spread, source_summary, summary_means
from lit_triune.rl.report_keys import SAMPLED


def _merge(into: dict[str, dict[str, float]], part: dict[str, dict[str, float]]) -> None:
    for src, sums in part.items():
        acc = into.setdefault(src, {k: 0.0 for k in sums})
        for k, v in sums.items():
            acc[k] += v


def _merge_answers(into: dict[str, dict[str, Counter]], part: dict[str, dict[str, Counter]]) -> None:
    for src, c in part.items():
        acc = into.setdefault(src, {"answers": Counter(), "truths": Counter()})
        acc["answers"].update(c["answers"])
        acc["truths"].update(c["truths"])


STAGES = ("init", "after_warm_start", "final")


def sampled_view(means: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The `sampled/` figures of a report with the prefix taken off (the greedy table's layout), or {}."""
    out = {src: {k[len(SAMPLED):]: v for k, v in m.items() if k.startswith(SAMPLED)} for src, m in means.items()}
    return {src: m for src, m in out.items() if m}


def report_stages(setting: bool | list[str]) -> tuple[str, ...]:
    """`stage_reports` as given in a config: true (every stage), false (none) or a list of stage names."""
    if isinstance(setting, bool):
        return STAGES if setting else ()
    unknown = [s for s in setting if s not in STAGES]
    if unknown:
        raise ValueError(f"stage_reports: unknown stages {unknown}; choose from {list(STAGES)}, true or false")
    return tuple(s for s in STAGES if s in setting)


Sums = dict[str, dict[str, float]]
Answers = dict[str, dict[str, Counter]]


def score_validation(module: Any, loader: Any, context: Any) -> tuple[Sums, Sums, Answers]:
    """Per-source sums of the scores of `loader`'s prompts: greedy (one completion each) and, with
    `val_samples` k > 0, k sampled completions each; and the greedy answers' counts. Summed, not averaged, so
    ranks (or several loaders) merge before `validation_means`."""
    k = module.rollout_settings.val_samples
    sums: Sums = {}
    sampled: Sums = {}
    answers: Answers = {}
    with torch.no_grad():
        for batch in loader:
            records = module.runner.evaluate(batch, context)
            _merge(sums, source_summary(records, module.iou_threshold))
            truths = [rm.get("ground_truth") for rm in batch.reward_models]
            _merge_answers(answers, answer_counts(records, truths))
            if k:
                _merge(sampled, source_summary(module.runner.evaluate_sampled(batch, context), module.iou_threshold))
    return sums, sampled, answers


def validation_means(sums: Sums, sampled: Sums, answers: Answers) -> dict[str, dict[str, float]]:
    """A report's figures per source: the greedy means, the answers' spread, the sampled means (`sampled/`)."""
    means = summary_means(sums)
    for src, spread in answer_spread(answers).items():
        means.setdefault(src, {}).update(spread)
    for src, m in summary_means(sampled).items():
        means.setdefault(src, {}).update({f"{SAMPLED}{key}": v for key, v in m.items()})
    return means


class StageReporter:
    def __init__(self, stages: bool | list[str] = True) -> None:
        self.stages = report_stages(stages)
        self.reports: dict[str, dict[str, dict[str, float]]] = {}
        # stage_reports.json's entries so far, carried in checkpoints: a resumed run logs to a new directory
        self.saved: dict[str, dict[str, Any]] = {}

    def report(self, module: Any, stage: str) -> dict[str, dict[str, float]] | None:
        trainer = module.trainer
        dm = getattr(trainer, "datamodule", None)
        if stage not in self.stages or dm is None or stage in self.reports:
            return None
        loader = dm.val_dataloader()
        if loader is None or (isinstance(loader, list) and not loader):
            return None
        was_training = module.policy.training
        module.runner.start()
        context = module.rollout_context()
        engine = context.engine
        if hasattr(engine, "sync_weights"):  # engines with their own weight copy (vLLM) see this step's policy
            with full_parameters(trainer):  # FSDP: the whole weights, not this rank's shard
                engine.sync_weights(module.policy)
        sums, sampled, answers = score_validation(module, loader, context)
        if was_training:
            module.policy.train()
            module.keep_frozen_in_eval()
        if dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (sums, sampled, answers))
            sums, sampled, answers = {}, {}, {}
            for part, part_sampled, part_answers in gathered:
                _merge(sums, part)
                _merge(sampled, part_sampled)
                _merge_answers(answers, part_answers)
        means = validation_means(sums, sampled, answers)
        self.reports[stage] = means
        # on every rank: Trainer.log_dir is a broadcast under DDP/FSDP (rank 0 alone would wait forever)
        log_dir = trainer.log_dir or trainer.default_root_dir
        scored_at = module.rollout_settings.val_iou_threshold
        self.saved[stage] = json.loads(json.dumps(  # plain types: checkpoints load with weights_only
            {"step": module.global_step, "iou_threshold": module.iou_threshold,
             "scored_at_iou": module.iou_threshold if scored_at is None else scored_at, "sources": means}))
        if trainer.is_global_zero:
            self._print(stage, module.global_step, means, module.iou_threshold, scored_at)
            self._save(log_dir, self.saved)
        log_report(trainer.loggers, stage, module.global_step, means, module.iou_threshold, scored_at)
        return means

    @staticmethod
    def _print(stage: str, step: int, means: dict[str, dict[str, float]], iou_threshold: float,
               scored_at: float | None = None) -> None:
        print(format_table(stage, step, means, iou_threshold, scored_at=scored_at), flush=True)
        if sampled := sampled_view(means):
            print(format_table(stage, step, sampled, iou_threshold, kind="sampled", scored_at=scored_at), flush=True)

    @staticmethod
    def _save(log_dir: str, entries: dict[str, dict[str, Any]]) -> None:
        path = Path(log_dir) / "stage_reports.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(entries)
        path.write_text(json.dumps(data, indent=2))


def log_report(loggers: list[Logger], stage: str, step: int, means: dict[str, dict[str, float]],
               iou_threshold: float, scored_at: float | None = None) -> None:
    """A markdown table for TensorBoard (text tag `stage_reports/<stage>`), flat metrics for other loggers."""
    flat = {f"stage/{stage}/{k}/{src}": v for src, m in means.items() for k, v in m.items()
            if k.removeprefix(SAMPLED) not in ("count", "box_count", "distinct_answers")}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            text = markdown_table(stage, step, means, iou_threshold, scored_at=scored_at)
            if sampled := sampled_view(means):
                text += "\n\n" + markdown_table(stage, step, sampled, iou_threshold, kind="sampled", scored_at=scored_at)
            logger.experiment.add_text(f"stage_reports/{stage}", text, global_step=step)
        else:
            logger.log_metrics(flat, step=step)


NOT_BOXES_BELOW = 0.8
"""A box source whose answers parse as boxes less often than this is flagged in the printed table."""

ONE_ANSWER_ABOVE = 0.9
"""A source whose most common answer is given to at least this share of its images, when no truth is
that common, is flagged as answering the same thing whatever the image (a collapse, not perception)."""


def one_answer_flag(m: dict[str, float]) -> str:
    """The printed flag for a source that answers the same thing to (almost) every image, or ''."""
    top, truth = m.get("top_answer"), m.get("top_truth")
    if top is None or truth is None or top < ONE_ANSWER_ABOVE or truth >= ONE_ANSWER_ABOVE:
        return ""
    return f"  <- one answer for {top:.0%} of images (most common truth: {truth:.0%})"


KIND_TITLES = {"greedy": "greedy", "sampled": "mean over sampled completions, `val_samples` a prompt; n counts completions"}


def threshold_title(iou_threshold: float, scored_at: float | None) -> str:
    """'IoU threshold 0.99', or with a fixed validation threshold 'IoU threshold 0.99 (training), box rewards
    scored at 0.50'."""
    if scored_at is None or scored_at == iou_threshold:
        return f"IoU threshold {iou_threshold:.2f}"
    return f"IoU threshold {iou_threshold:.2f} (training), box rewards scored at {scored_at:.2f}"


def format_table(stage: str, step: int, means: dict[str, dict[str, float]], iou_threshold: float,
                 kind: str = "greedy", scored_at: float | None = None) -> str:
    """The printed per-source table; box sources add mean IoU, IoU >= 0.5, IoU >= the current threshold and
    the share of answers that parse as boxes, and are flagged when too few do. `top-ans` is the share of
    images given the most common answer; a source answering one thing to nearly every image is flagged."""
    lines = [f"\n== validation: {stage} (step {step}, {threshold_title(iou_threshold, scored_at)}; {KIND_TITLES[kind]}) ==",
             f"{'source':24s} {'n':>4s} {'accuracy':>8s} {'format':>6s} {'reward':>6s} {'mIoU':>5s} "
             f"{'iou@.5':>6s} {'iou@thr':>7s} {'boxes':>5s} {'top-ans':>6s}"]
    for src, m in means.items():
        row = f"{src:24s} {int(m['count']):4d} {m['accuracy']:8.3f} {m['format']:6.3f} {m['reward']:6.3f}"
        if "box_count" in m:
            row += f" {m['iou']:5.3f} {m['iou@0.5']:6.3f} {m['iou@threshold']:7.3f} {m['parsed_boxes']:5.3f}"
            if m["parsed_boxes"] < NOT_BOXES_BELOW:
                row += f"  <- only {m['parsed_boxes']:.0%} of answers are boxes"
        else:
            row += " " * 27
        row += f" {m['top_answer']:7.2f}" if "top_answer" in m else ""
        lines.append((row + one_answer_flag(m)).rstrip())
    return "\n".join(lines)


def markdown_table(stage: str, step: int, means: dict[str, dict[str, float]], iou_threshold: float,
                   kind: str = "greedy", scored_at: float | None = None) -> str:
    """The printed table as markdown (TensorBoard's text view renders it): a row per source; box columns
    are left blank (–) for sources without ground-truth boxes."""
    head = ["source", "n", "accuracy", "format", "reward", "mIoU", "IoU ≥ 0.5", "IoU ≥ threshold", "boxes parsed",
            "most common answer"]
    lines = [f"**validation: {stage}** · step {step} · {threshold_title(iou_threshold, scored_at)} · {KIND_TITLES[kind]}",
             "",
             "| " + " | ".join(head) + " |", "|" + "|".join([":---", *["---:"] * (len(head) - 1)]) + "|"]
    for src, m in means.items():
        cells = [f"`{src}`", f"{int(m['count'])}", *(f"{m[k]:.3f}" for k in ("accuracy", "format", "reward"))]
        box_keys = ("iou", "iou@0.5", "iou@threshold", "parsed_boxes")
        cells += [f"{m[k]:.3f}" for k in box_keys] if "box_count" in m else ["–"] * len(box_keys)
        flag = one_answer_flag(m).strip(" <-")
        cells.append(f"{m['top_answer']:.0%}{' ⚠ ' + flag if flag else ''}" if "top_answer" in m else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
