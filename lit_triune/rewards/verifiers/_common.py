"""Helpers shared by the built-in verifiers: reading `verifier_parm` and the sample's ground truth."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lit_triune.rewards.boxparse import Box, parse_boxes
from lit_triune.rewards.text import answer_block, clip

DEFAULT_IOU_THRESHOLD = 0.5
"""IoU threshold when the caller passes None: the conventional "correct detection" bar. During training
the DynamicIoUThreshold callback passes 0.85 -> 0.95 -> 0.99 instead."""


def parm(reward_model: Mapping[str, Any]) -> dict[str, Any]:
    """`verifier_parm` as a dict (None -> {}, a JSON string is decoded); ValueError otherwise."""
    raw = reward_model.get("verifier_parm")
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as err:
            raise ValueError(f"verifier_parm is a string but not JSON: {err}") from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"verifier_parm must be a dict, got {type(raw).__name__}")
    return dict(raw)


def is_normalized(p: Mapping[str, Any]) -> bool:
    """Ground-truth boxes in the 0-1000 frame? Our key `normalized`, or Orsta's `det_verifier_normalized`."""
    value = p.get("normalized", p.get("det_verifier_normalized"))
    return bool(value)


def threshold(iou_threshold: float | None) -> float:
    return DEFAULT_IOU_THRESHOLD if iou_threshold is None else float(iou_threshold)


def response_text(response: str) -> str:
    """The `<answer>` block if there is one, else the (clipped) whole completion."""
    block = answer_block(clip(response))
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


def truth_boxes(reward_model: Mapping[str, Any], *, single: bool = False) -> list[Box]:
    """Ground-truth boxes; `[]` is a valid empty truth. ValueError when nothing box-like is there."""
    text = truth_text(reward_model)
    if text.replace(" ", "") == "[]" and not single:
        return []
    boxes, _ = parse_boxes(text)
    if not boxes:
        raise ValueError(f"ground truth has no parseable box: {text[:200]!r}")
    return boxes[:1] if single else boxes
