"""Detection accuracy as the released V-Triune reward server computes it (compat mode only).

Behaviour reproduced (see NOTICE): IoU scores from two matchers at 11 thresholds, each mixing the mean
credited IoU with completeness; COCO mAP / AP50 / AP75; the size penalty 0.6^|#pred - #gt|; and the
`det_reward_ratio`-weighted mean of the five terms. Summation order is the server's wherever the
result can depend on it, since compat mode promises its floats, not approximately its floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import add
from typing import Any

from lit_triune.rewards.coco import coco_map
from lit_triune.rewards.vtriune.released_boxes import (
    answer_content,
    iou_table,
    match_iou_first_released,
    match_label_first_released,
    released_boxes,
    to_thousandths,
)

THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
RATIO_KEYS = ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75")
TERMS = ("iou_max_iou_first", "iou_max_label_first", "map", "map50", "map75")  # the weighted terms, in order
_MATCHERS = {"iou": match_iou_first_released, "label": match_label_first_released}
_REPORTED = (("iou", 0.5), ("iou", 0.95), ("label", 0.5), ("label", 0.75), ("label", 0.95), ("label", 0.99))


def sanitize_ratios(ratios: Any) -> dict[str, Any]:
    """`det_reward_ratio` as the server's constructor leaves it: a missing key, or a value below 0 or
    above 1, becomes 0.0; NaN stays; a value that cannot be compared with numbers (None, a string) raises."""
    out = dict(ratios)
    for key in RATIO_KEYS:
        if key not in out or out[key] < 0 or out[key] > 1:
            out[key] = 0.0
    return out


def select_threshold(requested: Any, step_ratio: float) -> Any:
    """The server's threshold choice: one of THRESHOLDS as given, "dynamic" by training progress
    (0.85 up to 10 %, 0.95 up to 25 %, then 0.99), and "average" for anything else."""
    if requested == "dynamic":
        return 0.85 if step_ratio <= 0.1 else 0.95 if step_ratio <= 0.25 else 0.99
    return requested if requested in THRESHOLDS else "average"


@dataclass(frozen=True)
class _AtThreshold:
    mean_iou: Any  # credited IoU summed over matches, per ground-truth box
    precision: float
    recall: float
    weighted: Any  # mean_iou mixed with completeness by `iou_completeness`


def _at_threshold(n_pred: int, n_gt: int, credited: list, completeness_weight: Any) -> _AtThreshold:
    hits = len(credited)
    mean_iou = sum(credited) / n_gt if credited else 0.0
    missed = (n_gt - hits) / n_gt
    spurious = (n_pred - hits) / n_pred if n_pred else 0.0
    completeness = 1.0 - (missed + spurious) / 2.0
    weighted = mean_iou * (1.0 - completeness_weight) + completeness * completeness_weight
    return _AtThreshold(mean_iou, 1 - spurious, 1 - missed, weighted)


def _report_keys() -> list[str]:
    return [
        f"report_iou_{round(thr * 100)}_{matcher}_match_{part}"
        for matcher, thr in _REPORTED
        for part in ("pure", "precision", "recall")
    ]


def zero_scores() -> dict[str, float]:
    """The server's result when either side has no readable box: every key present, all 0."""
    keys = ["final_score", "size_penalty", "pure_iou_score_max_iou", "pure_iou_score_max_label"]
    keys += [f"pure_{m}_score" for m in ("map", "map50", "map75")]
    keys += ["weighted_iou_score_max_iou", "weighted_iou_score_max_label"]
    keys += [f"weighted_{m}_score" for m in ("map", "map50", "map75")]
    return dict.fromkeys(keys + _report_keys(), 0.0)


def verify_accuracy(
    response: str, solution: Any, ratios: dict[str, Any], normalized: Any, grid_thw: Any, select: Any
) -> tuple[dict[str, Any], list, list]:
    """(the server's result dict, predicted boxes, ground-truth boxes). Raises where the server raises."""
    result = zero_scores()
    pred = released_boxes(answer_content(response.strip()).lower())
    gt = released_boxes(answer_content(solution.strip()).lower())
    if gt is None or pred is None:
        return result, pred or [], gt or []
    if normalized and grid_thw is not None and len(grid_thw) > 0:
        pred = to_thousandths(pred, width=grid_thw[0][2], height=grid_thw[0][1])
    n_p, n_g = len(pred), len(gt)
    penalty = 0.6 ** abs(n_p - n_g)
    table = iou_table(pred, gt)  # [P, G]
    per_threshold = {
        (name, thr): _at_threshold(n_p, n_g, matcher(pred, gt, table, thr), ratios["iou_completeness"])
        for name, matcher in _MATCHERS.items()
        for thr in THRESHOLDS
    }

    def weighted_iou(name: str) -> Any:
        if select == "average":
            return sum(per_threshold[name, thr].weighted for thr in THRESHOLDS) / len(THRESHOLDS)
        return per_threshold[name, select].weighted

    for name, thr in _REPORTED:
        at, prefix = per_threshold[name, thr], f"report_iou_{round(thr * 100)}_{name}_match"
        result.update(
            {
                f"{prefix}_pure": at.mean_iou,
                f"{prefix}_precision": at.precision,
                f"{prefix}_recall": at.recall,
            }
        )
    m, m50, m75 = coco_map(
        [(p["bbox_2d"], p["label"]) for p in pred], [(g["bbox_2d"], g["label"]) for g in gt]
    )
    pure = dict(zip(TERMS, (weighted_iou("iou"), weighted_iou("label"), m, m50, m75), strict=True))
    penalised = {term: value * penalty for term, value in pure.items()}
    weights = [float(ratios[term]) for term in TERMS]
    total_weight = reduce(add, weights)  # left to right, as the server's written-out sum
    if total_weight > 0:
        final = (
            reduce(add, (penalised[term] * w for term, w in zip(TERMS, weights, strict=True))) / total_weight
        )
    else:
        final = 0.0
    result.update(
        final_score=final,
        size_penalty=penalty,
        pure_iou_score_max_iou=pure["iou_max_iou_first"],
        pure_iou_score_max_label=pure["iou_max_label_first"],
        pure_map_score=m,
        pure_map50_score=m50,
        pure_map75_score=m75,
        weighted_iou_score_max_iou=penalised["iou_max_iou_first"],
        weighted_iou_score_max_label=penalised["iou_max_label_first"],
        weighted_map_score=penalised["map"],
        weighted_map50_score=penalised["map50"],
        weighted_map75_score=penalised["map75"],
    )
    return result, pred, gt
