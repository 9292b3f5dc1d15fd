"""Per-sample rollout records: the dict `training_step`/`validation_step` return under "rollout"
(docs/interfaces.md), read by the SourceMetrics and RolloutSamplesLogger callbacks."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

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


def source_summary(records: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Sums per source (accuracy, format, reward, count) — the stage reports add these across batches."""
    out: dict[str, dict[str, float]] = {}
    for i, src in enumerate(records["data_source"]):
        s = out.setdefault(src, {"accuracy": 0.0, "format": 0.0, "reward": 0.0, "count": 0.0})
        s["accuracy"] += float(records["accuracy"][i])
        s["format"] += float(records["format"][i])
        s["reward"] += float(records["reward"][i])
        s["count"] += 1.0
    return out
