"""IoU and greedy matching of predicted boxes to ground truth (boxes, parsing and frames: `lit_triune.boxes`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lit_triune.boxes import Box


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes in [0, 1]; 0 when either box has no area or they don't overlap."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if not (iw > 0 and ih > 0):
        return 0.0
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - iw * ih
    if not union > 0:
        return 0.0
    return float(min(1.0, max(0.0, iw * ih / union)))


def iou_matrix(pred: Sequence[Box], gt: Sequence[Box]) -> np.ndarray:  # [P, G] float64
    """Pairwise IoU, vectorised; degenerate or inverted boxes get 0 against everything."""
    if not pred or not gt:
        return np.zeros((len(pred), len(gt)))
    p = np.array([b.xyxy for b in pred], dtype=np.float64)  # [P, 4]
    g = np.array([b.xyxy for b in gt], dtype=np.float64)  # [G, 4]
    iw = np.minimum(p[:, None, 2], g[None, :, 2]) - np.maximum(p[:, None, 0], g[None, :, 0])  # [P, G]
    ih = np.minimum(p[:, None, 3], g[None, :, 3]) - np.maximum(p[:, None, 1], g[None, :, 1])  # [P, G]
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)  # [P, G]
    area_p = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])  # [P]
    area_g = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])  # [G]
    union = area_p[:, None] + area_g[None, :] - inter  # [P, G]
    valid = (inter > 0) & (union > 0) & (area_p[:, None] > 0) & (area_g[None, :] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(valid, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.clip(out, 0.0, 1.0)


def norm_label(label: str | None) -> str:
    return " ".join((label or "").lower().split())


@dataclass
class Match:
    pred: int
    gt: int
    iou: float  # IoU credited to the pair: 0 when labels differ (IoU-first matching only)


def match_label_first(
    pred: Sequence[Box], gt: Sequence[Box], ious: np.ndarray, threshold: float
) -> list[Match]:
    """For each ground-truth box in order, the unmatched same-label prediction of highest IoU, kept if IoU >= threshold."""
    matches: list[Match] = []
    used: set[int] = set()
    pred_labels = [norm_label(b.label) for b in pred]
    for j, g in enumerate(gt):
        label = norm_label(g.label)
        best, best_iou = -1, -1.0
        for i, pl in enumerate(pred_labels):
            if i not in used and pl == label and ious[i, j] > best_iou:
                best, best_iou = i, float(ious[i, j])
        if best >= 0 and best_iou >= threshold:
            matches.append(Match(best, j, best_iou))
            used.add(best)
    return matches


def match_iou_first(
    pred: Sequence[Box], gt: Sequence[Box], ious: np.ndarray, threshold: float
) -> list[Match]:
    """Repeatedly take the highest-IoU unmatched pair (>= threshold); a label mismatch is matched but credited 0.

    Fixes the released matcher, which credits the max IoU to the *last* unmatched pair it looped over.
    """
    matches: list[Match] = []
    if ious.size == 0:
        return matches
    work = ious.astype(np.float64, copy=True)  # [P, G]
    for _ in range(min(len(pred), len(gt))):
        flat = int(np.argmax(work))
        i, j = divmod(flat, work.shape[1])
        best = float(work[i, j])
        if best < threshold or best < 0:
            break
        same = norm_label(pred[i].label) == norm_label(gt[j].label)
        matches.append(Match(i, j, best if same else 0.0))
        work[i, :] = -1.0
        work[:, j] = -1.0
    return matches
