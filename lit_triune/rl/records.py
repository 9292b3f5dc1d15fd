"""Per-sample rollout records: the dict `training_step`/`validation_step` return under "rollout"
(docs/interfaces.md), read by the SourceMetrics and RolloutSamplesLogger callbacks."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import torch
from torch import Tensor

from lit_triune.rewards.text import answer_block

_OPTIONAL_FLOATS = ("iou", "precision", "recall", "map")


def _floats(results: list[dict[str, Any]], key: str) -> Tensor:  # [N]
    out = []
    for r in results:
        v = r.get(key, math.nan)
        out.append(float(v) if isinstance(v, (int, float)) and v is not None else math.nan)
    return torch.tensor(out, dtype=torch.float32)


def build_records(
    *,
    data_sources: list[str],  # N
    prompts: list[str],  # N
    responses: list[str],  # N
    results: list[dict[str, Any]],  # N, from lit_triune.rewards.score
    response_lengths: Tensor,  # [N] long
    truncated: Tensor,  # [N] bool
    images: list[Any] | None = None,  # N, as the model saw them
) -> dict[str, Any]:
    records: dict[str, Any] = {
        "data_source": list(data_sources),
        "prompt": list(prompts),
        "response": list(responses),
        "reward": _floats(results, "reward"),
        "accuracy": _floats(results, "accuracy"),
        "format": _floats(results, "format"),
        "response_length": response_lengths.long().cpu(),
        "truncated": truncated.bool().cpu(),
        "verifier_failure": torch.tensor([r.get("failure") is not None for r in results], dtype=torch.bool),
    }
    for key in _OPTIONAL_FLOATS:
        records[key] = _floats(results, key)
    if images is not None:
        records["images"] = list(images)
        records["pred_boxes"] = [r.get("pred_boxes") or [] for r in results]
        records["gt_boxes"] = [r.get("gt_boxes") or [] for r in results]
    return records


BOX_SUMS = ("box_count", "iou", "iou@0.5", "iou@threshold", "parsed_boxes")
"""Sums a summary keeps for box rows (those with ground-truth boxes): how perception is doing, beside
the verifier's accuracy, which hides a model that never writes a box behind a 1.0 format reward."""


def source_summary(records: dict[str, Any], iou_threshold: float | None = None) -> dict[str, dict[str, float]]:
    """Sums per source (accuracy, format, reward, count) — the stage reports add these across batches.

    Box rows (records with `gt_boxes`) also add `box_count`, `iou` (the verifier's IoU, 0 when nothing
    parsed), `iou@0.5` and `iou@threshold` (rows whose IoU reaches 0.5 / `iou_threshold`) and
    `parsed_boxes` (rows whose answer parsed as at least one box).
    """
    out: dict[str, dict[str, float]] = {}
    gt_boxes = records.get("gt_boxes")
    pred_boxes = records.get("pred_boxes")
    for i, src in enumerate(records["data_source"]):
        s = out.setdefault(src, {"accuracy": 0.0, "format": 0.0, "reward": 0.0, "count": 0.0})
        s["accuracy"] += float(records["accuracy"][i])
        s["format"] += float(records["format"][i])
        s["reward"] += float(records["reward"][i])
        s["count"] += 1.0
        if gt_boxes is None or not gt_boxes[i]:
            continue
        iou = float(records["iou"][i])
        iou = 0.0 if math.isnan(iou) else iou
        for key in BOX_SUMS:
            s.setdefault(key, 0.0)
        s["box_count"] += 1.0
        s["iou"] += iou
        s["iou@0.5"] += float(iou >= 0.5)
        s["iou@threshold"] += float(iou >= (0.5 if iou_threshold is None else iou_threshold))
        s["parsed_boxes"] += float(bool(pred_boxes and pred_boxes[i]))
    return out


def summary_means(sums: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Sums from :func:`source_summary` (added over batches and ranks) -> per-source means; box figures are
    means over the box rows, `count` / `box_count` stay counts."""
    means: dict[str, dict[str, float]] = {}
    for src, s in sorted(sums.items()):
        m = {k: v / max(s["count"], 1.0) for k, v in s.items() if k not in BOX_SUMS and k != "count"}
        m["count"] = s["count"]
        if s.get("box_count"):
            m.update({k: s[k] / s["box_count"] for k in BOX_SUMS if k != "box_count"})
            m["box_count"] = s["box_count"]
        means[src] = m
    return means


def final_answer(response: str) -> str:
    """The last <answer> block as the verifiers read it (`rewards.text.answer_block`), or the whole
    response, stripped, when it has none."""
    block = answer_block(response)
    return response.strip() if block is None else block


def answer_counts(records: dict[str, Any], truths: list[Any]) -> dict[str, dict[str, Counter]]:
    """Per source: how often each final answer and each ground truth occurs (greedy rows, one per prompt).

    Added across batches and ranks (`Counter` sums), they show a policy that gives one answer to every
    image -- a format-1.0 collapse onto the most common truth that accuracy alone does not reveal.
    """
    out: dict[str, dict[str, Counter]] = {}
    for src, response, truth in zip(records["data_source"], records["response"], truths, strict=True):
        c = out.setdefault(src, {"answers": Counter(), "truths": Counter()})
        c["answers"][final_answer(response)] += 1
        c["truths"][truth if isinstance(truth, str) else json.dumps(truth, sort_keys=True)] += 1
    return out


def answer_spread(counts: dict[str, dict[str, Counter]]) -> dict[str, dict[str, float]]:
    """Per source: `top_answer` (share of rows given the most common answer), `top_truth` (share of the
    most common ground truth) and `distinct_answers`."""
    out = {}
    for src, c in counts.items():
        n = max(sum(c["answers"].values()), 1)
        out[src] = {"top_answer": max(c["answers"].values(), default=0) / n,
                    "top_truth": max(c["truths"].values(), default=0) / max(sum(c["truths"].values()), 1),
                    "distinct_answers": float(len(c["answers"]))}
    return out
