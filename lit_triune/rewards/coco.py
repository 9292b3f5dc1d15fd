"""COCO box mAP for one image, every prediction at confidence 1.0: mAP@[.50:.95], AP50 and AP75.

The numbers are those of pycocotools' `COCOeval` (iouType "bbox", area range "all", maxDets 100; see
NOTICE) on the same single image, to the last float: that is what the released V-Triune reward
server runs, so the compatibility mode shares this function. Written for one image and one call
per reward, so a reward costs microseconds rather than a COCO index. What has to agree with
pycocotools, and why each piece is written the way it is:

* IoU in the order of its C routine (`fmin`/`fmax`, so a NaN operand loses; zero union -> inf/NaN);
* greedy matching in detection order (all scores tie, so order decides), each detection taking the
  free ground truth of highest IoU at or above the threshold, the later one on a tie, ground truth
  outside the area range only when no other is left;
* precision made non-increasing from the right, read at 101 recall points by left bisection;
* the mean over every cell that is not -1, in the array layout pycocotools averages over.

Categories are the ground-truth labels; predictions with other labels are dropped, as the released
code does.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # [T]
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # [R]
AREA_RANGE = (0.0, 1e5**2)  # "all"
MAX_DETS = 100
_EPS = np.spacing(1)  # in the precision denominator, as pycocotools adds it
_TIE_CAP = 1 - 1e-10  # a threshold of 1.0 still admits IoU 1 - 1e-10


def _xywh_and_area(xyxy: Sequence[float]) -> tuple[list[float], float]:
    """What COCO stores for a box: [x, y, w, h] as doubles, and the area from the original numbers."""
    x1, y1, x2, y2 = xyxy
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], (x2 - x1) * (y2 - y1)


def _pairwise_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:  # [D, 4], [G, 4] xywh -> [D, G]
    """IoU of every (detection, ground truth) pair with the C routine's arithmetic, element by element."""
    d, g = dt[:, None, :], gt[None, :, :]  # [D, 1, 4], [1, G, 4]
    with np.errstate(all="ignore"):  # inf/NaN coordinates (compat mode reads JSON's 1e400) take the C path
        d_right, g_right = d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]  # w + x, in the C order
        d_bottom, g_bottom = d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]
        width = np.fmin(d_right, g_right) - np.fmax(d[..., 0], g[..., 0])  # [D, G]
        height = np.fmin(d_bottom, g_bottom) - np.fmax(d[..., 1], g[..., 1])  # [D, G]
        inter = width * height
        union = d[..., 2] * d[..., 3] + g[..., 2] * g[..., 3] - inter
        safe_union = np.where(union == 0, 1.0, union)
        iou = np.where(union == 0, np.where(inter > 0, np.inf, np.nan), inter / safe_union)
    return np.where((width <= 0) | (height <= 0), 0.0, iou)  # NaN extents are not "<= 0": they go on


def _pick(ious: list[float], taken: list[bool], ignored: list[bool], threshold: float) -> int:
    """Ground-truth index one detection matches, or -1.

    A scan in ground-truth order (non-ignored first) that keeps the latest free entry not below the
    best so far, and stops at the ignored block once a non-ignored match is held. Kept as a scan
    because a NaN IoU resets the running best, which no max/argmax reproduces. Plain lists: the
    scan runs T * D times per category, where numpy's per-element access costs more than the work.
    """
    best, chosen = min(float(threshold), _TIE_CAP), -1
    for g, iou in enumerate(ious):
        if taken[g]:
            continue
        if chosen >= 0 and ignored[g] and not ignored[chosen]:
            break
        if not iou < best:
            best, chosen = iou, g
    return chosen


def _category_precision(
    dts: list[tuple[list[float], float]], gts: list[tuple[list[float], float]]
) -> np.ndarray | None:
    """[T, R] interpolated precision for one category; None when no ground truth counts (all ignored)."""
    dts = dts[:MAX_DETS]
    gts = sorted(gts, key=lambda box: _outside(box[1]))  # stable: counted ground truth first
    gt_ignored = np.array([_outside(area) for _, area in gts], dtype=bool)  # [G]
    n_counted = int((~gt_ignored).sum())
    if n_counted == 0:
        return None
    n_t, n_d = len(IOU_THRESHOLDS), len(dts)
    matched = np.zeros((n_t, n_d), dtype=bool)
    matched_ignored = np.zeros((n_t, n_d), dtype=bool)
    if n_d:
        rows = _pairwise_iou(np.array([b for b, _ in dts]), np.array([b for b, _ in gts])).tolist()  # [D][G]
        ignored_gt = gt_ignored.tolist()  # [G]
        for t, threshold in enumerate(IOU_THRESHOLDS.tolist()):
            taken = [False] * len(gts)
            for d in range(n_d):
                g = _pick(rows[d], taken, ignored_gt, threshold)
                if g >= 0:
                    taken[g] = matched[t, d] = True
                    matched_ignored[t, d] = ignored_gt[g]
    dt_outside = np.array([_outside(area) for _, area in dts], dtype=bool)  # [D]
    ignored = matched_ignored | (~matched & dt_outside[None, :])  # [T, D]
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=float)  # [T, D]
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=float)  # [T, D]
    return _interpolated(tp, fp, n_counted)


def _interpolated(
    tp: np.ndarray,  # [T, D] cumulative true positives, in detection order
    fp: np.ndarray,  # [T, D] cumulative false positives
    n_counted: int,  # ground truth not ignored
) -> np.ndarray:  # [T, R]
    """Precision at each recall point: the best precision at that recall or beyond, 0 past the last detection."""
    n_t, n_d = tp.shape
    if n_d == 0:
        return np.zeros((n_t, len(RECALL_POINTS)))
    recall = tp / n_counted  # [T, D], non-decreasing along D
    precision = tp / (fp + tp + _EPS)  # [T, D]
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # [T, D]
    first_reaching = (recall[:, :, None] < RECALL_POINTS).sum(axis=1)  # [T, R]: left bisection
    picked = envelope[np.arange(n_t)[:, None], np.minimum(first_reaching, n_d - 1)]  # [T, R]
    return np.where(first_reaching < n_d, picked, 0.0)


def _outside(area: float) -> bool:
    return area < AREA_RANGE[0] or area > AREA_RANGE[1]


def coco_map(
    pred: Sequence[tuple[Sequence[float], Hashable]],
    gt: Sequence[tuple[Sequence[float], Hashable]],
) -> tuple[float, float, float]:
    """(mAP@[.5:.95], AP50, AP75) of (xyxy, label) predictions, in order, against (xyxy, label) ground truth.

    Every prediction has confidence 1.0, so order is the tie-break; returns (0, 0, 0) when no prediction
    carries a ground-truth label, and -1 entries where pycocotools would (no scorable ground truth).
    """
    category_of: dict[Hashable, int] = {}
    for _, label in gt:
        category_of.setdefault(label, len(category_of))
    kept = [(box, label) for box, label in pred if label in category_of]
    if not kept:
        return 0.0, 0.0, 0.0
    gt_by_cat: list[list[tuple[list[float], float]]] = [[] for _ in category_of]
    dt_by_cat: list[list[tuple[list[float], float]]] = [[] for _ in category_of]
    for box, label in gt:
        gt_by_cat[category_of[label]].append(_xywh_and_area(box))
    for box, label in kept:
        dt_by_cat[category_of[label]].append(_xywh_and_area(box))
    table = np.full((len(IOU_THRESHOLDS), len(RECALL_POINTS), len(category_of)), -1.0)  # [T, R, K]
    for k, (dts, gts) in enumerate(zip(dt_by_cat, gt_by_cat, strict=True)):
        precision = _category_precision(dts, gts)
        if precision is not None:
            table[:, :, k] = precision
    return (
        _mean_scored(table),
        _mean_scored(table[IOU_THRESHOLDS == 0.5]),
        _mean_scored(table[IOU_THRESHOLDS == 0.75]),
    )


def _mean_scored(table: np.ndarray) -> float:
    """Mean over the cells that were scored (not -1), in C order as pycocotools takes it; -1 if none."""
    scored = table[table > -1]
    return (
        -1.0 if scored.size == 0 else float(np.add.reduce(scored) / scored.size)
    )  # np.mean's sum, less overhead
