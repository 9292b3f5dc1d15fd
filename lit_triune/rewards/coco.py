"""COCO-style mAP for one image: AP averaged over IoU 0.50:0.95 and 101 recall points, plus AP50 / AP75.

A line-by-line re-derivation of what pycocotools' `COCOeval` (bbox, area "all", maxDets 100) computes
when every detection has score 1.0, written for one image so a reward costs microseconds, not a COCO
object. Arithmetic follows pycocotools exactly (IoU in the C `bbIou` order, ids, stable sorts, the
`searchsorted` interpolation, `np.mean` over the valid cells), which is why the same function also
serves the V-Triune compatibility mode: the released reward server runs pycocotools on the same input.
Categories are the ground-truth labels; detections of other labels are dropped, as the released code does.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # [T=10]
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)  # [R=101]
AREA_RANGE = (0**2, 1e5**2)  # pycocotools' "all"
MAX_DETS = 100
_EPS = np.spacing(1)


def _fmin(a: float, b: float) -> float:  # C fmin: a NaN argument loses
    if a != a:
        return b
    if b != b:
        return a
    return a if a < b else b


def _fmax(a: float, b: float) -> float:
    if a != a:
        return b
    if b != b:
        return a
    return a if a > b else b


def _bb_iou(d: Sequence[float], g: Sequence[float]) -> float:
    """pycocotools `bbIou` for one pair of [x, y, w, h] doubles, non-crowd."""
    w = _fmin(d[2] + d[0], g[2] + g[0]) - _fmax(d[0], g[0])
    if w <= 0:
        return 0.0
    h = _fmin(d[3] + d[1], g[3] + g[1]) - _fmax(d[1], g[1])
    if h <= 0:
        return 0.0
    i = w * h
    u = d[2] * d[3] + g[2] * g[3] - i
    if u == 0:
        return math.inf if i > 0 else math.nan
    return i / u


def _coco(xyxy: Sequence[float]) -> tuple[list[float], float]:
    """([x, y, w, h] as doubles, area with Python arithmetic): what pycocotools sees for a box."""
    x1, y1, x2, y2 = xyxy
    area = (x2 - x1) * (y2 - y1)
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], area


def _out_of_range(area: float) -> bool:
    return area < AREA_RANGE[0] or area > AREA_RANGE[1]


def _category_precision(
    dts: list[tuple[list[float], float]], gts: list[tuple[list[float], float]]
) -> np.ndarray | None:
    """[T, R] interpolated precision for one category, or None when it has no non-ignored ground truth."""
    dts = dts[:MAX_DETS]
    gt_ignore = [1 if _out_of_range(area) else 0 for _, area in gts]
    order = sorted(range(len(gts)), key=lambda k: gt_ignore[k])  # stable: non-ignored first
    gts = [gts[k] for k in order]
    gt_ig = [gt_ignore[k] for k in order]
    n_t, n_d, n_g = len(IOU_THRESHOLDS), len(dts), len(gts)
    ious = [[_bb_iou(d[0], g[0]) for g in gts] for d in dts]  # [D, G]
    dtm = np.zeros((n_t, n_d))
    dt_ig = np.zeros((n_t, n_d))
    gtm = np.zeros((n_t, n_g))
    if n_d and n_g:
        for t_idx, t in enumerate(IOU_THRESHOLDS):
            for d_idx in range(n_d):
                best, m = min(float(t), 1 - 1e-10), -1
                for g_idx in range(n_g):
                    if gtm[t_idx, g_idx] > 0:
                        continue
                    if m > -1 and gt_ig[m] == 0 and gt_ig[g_idx] == 1:
                        break
                    if ious[d_idx][g_idx] < best:
                        continue
                    best, m = ious[d_idx][g_idx], g_idx
                if m == -1:
                    continue
                dt_ig[t_idx, d_idx] = gt_ig[m]
                dtm[t_idx, d_idx] = order[m] + 1  # any non-zero id marks a match
                gtm[t_idx, m] = d_idx + 1
    outside = np.array([_out_of_range(area) for _, area in dts], dtype=bool).reshape((1, n_d))
    dt_ig = np.logical_or(dt_ig, np.logical_and(dtm == 0, np.repeat(outside, n_t, 0)))  # [T, D]
    npig = int(np.count_nonzero(np.array(gt_ig) == 0))
    if npig == 0:
        return None
    tps = np.logical_and(dtm, np.logical_not(dt_ig))
    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)  # [T, D]
    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)  # [T, D]
    precision = np.zeros((n_t, len(RECALL_THRESHOLDS)))  # [T, R]
    for t_idx in range(n_t):
        tp, fp = tp_sum[t_idx], fp_sum[t_idx]
        rc = tp / npig
        pr = (tp / (fp + tp + _EPS)).tolist()
        for i in range(len(pr) - 1, 0, -1):
            if pr[i] > pr[i - 1]:
                pr[i - 1] = pr[i]
        inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        q = np.zeros(len(RECALL_THRESHOLDS))
        for r_idx, p_idx in enumerate(inds):
            if p_idx >= len(pr):
                break
            q[r_idx] = pr[p_idx]
        precision[t_idx] = q
    return precision


def coco_map(
    pred: Sequence[tuple[Sequence[float], Hashable]],
    gt: Sequence[tuple[Sequence[float], Hashable]],
) -> tuple[float, float, float]:
    """(mAP@[.5:.95], AP50, AP75) of (xyxy, label) predictions, in order, against (xyxy, label) ground truth.

    Every prediction has confidence 1.0, so order is the tie-break; returns (0, 0, 0) when no prediction
    carries a ground-truth label, and -1 entries where pycocotools would (no scorable ground truth).
    """
    categories: dict[Hashable, int] = {}
    for _, label in gt:
        categories.setdefault(label, len(categories))
    kept = [(box, label) for box, label in pred if label in categories]
    if not kept:
        return 0.0, 0.0, 0.0
    per_cat_gt: list[list[tuple[list[float], float]]] = [[] for _ in categories]
    per_cat_dt: list[list[tuple[list[float], float]]] = [[] for _ in categories]
    for box, label in gt:
        per_cat_gt[categories[label]].append(_coco(box))
    for box, label in kept:
        per_cat_dt[categories[label]].append(_coco(box))
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(categories)))  # [T, R, K]
    for k in range(len(categories)):
        cat = _category_precision(per_cat_dt[k], per_cat_gt[k])
        if cat is not None:
            precision[:, :, k] = cat
    return (
        _mean_valid(precision),
        _mean_valid(precision[IOU_THRESHOLDS == 0.5]),
        _mean_valid(precision[IOU_THRESHOLDS == 0.75]),
    )


def _mean_valid(s: np.ndarray) -> float:
    valid = s[s > -1]
    return -1.0 if valid.size == 0 else float(np.mean(valid))
