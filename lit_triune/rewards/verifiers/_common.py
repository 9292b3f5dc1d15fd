"""Helpers shared by the built-in verifiers: the IoU threshold, the answer text and the ground-truth text.

`verifier_parm` and box ground truth are read by `lit_triune.boxes` (shared with the data side)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lit_triune.boxes import verifier_parm as parm  # noqa: F401  (the one reader, re-exported for the verifiers)
from lit_triune.rewards.text import answer_block, clip, single_answer_block

DEFAULT_IOU_THRESHOLD = 0.5
"""IoU threshold when the caller passes None: the conventional "correct detection" bar. During training
the DynamicIoUThreshold callback passes 0.85 -> 0.95 -> 0.99 instead."""


def threshold(iou_threshold: float | None) -> float:
    return DEFAULT_IOU_THRESHOLD if iou_threshold is None else float(iou_threshold)


def response_text(response: str) -> str:
    """The one `<answer>` block if there is one, else the (clipped) whole completion; AnswerError when the
    completion opens several blocks (several candidate answers, a `parse` failure)."""
    block = single_answer_block(clip(response))
    return block if block is not None else clip(response)


def truth_text(reward_model: Mapping[str, Any]) -> str:
    """Ground truth as text, `<answer>` tags removed; ValueError if missing."""
    gt = reward_model.get("ground_truth")
    if gt is None:
        gt = reward_model.get("answer")
    if gt is None:
        raise ValueError("reward_model has neither 'ground_truth' nor 'answer'")
    if not isinstance(gt, str):
        return json.dumps(gt) if isinstance(gt, (list, dict, int, float)) else str(gt)
    block = answer_block(gt)
    return block if block is not None else gt.strip()
