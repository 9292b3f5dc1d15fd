"""The released `DetectionVerifier.verify_accuracy`, re-implemented: IoU (two matchers, 11 thresholds,
completeness), COCO mAP, the 0.6^|#pred-#gt| size penalty and the `det_reward_ratio` mix."""

from __future__ import annotations

from typing import Any

from lit_triune.rewards.coco import coco_map
from lit_triune.rewards.vtriune.boxes import (
    answer_content,
    iou_table,
    match_iou_first_released,
    match_label_first_released,
    normalize_in_place,
    released_boxes,
)

THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
RATIO_KEYS = ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75")
_REPORTS = (("iou", 0.5), ("iou", 0.95), ("label", 0.5), ("label", 0.75), ("label", 0.95), ("label", 0.99))


def sanitize_ratios(ratios: Any) -> dict[str, Any]:
    """Released constructor: a missing key or one outside [0, 1] becomes 0.0 (None or a string raises)."""
    out = dict(ratios)  # a non-mapping raises here, as `key not in None` does in the released code
    for key in RATIO_KEYS:
        if key not in out:
            out[key] = 0.0
        elif out[key] < 0 or out[key] > 1:
            out[key] = 0.0
    return out


def select_threshold(iou_threshold: Any, step_ratio: float) -> Any:
    """Released threshold choice: a listed float, 'average', or 'dynamic' (0.85 / 0.95 / 0.99 by step ratio)."""
    if iou_threshold is None or iou_threshold not in (*THRESHOLDS, "average", "dynamic"):
        return "average"
    if iou_threshold == "dynamic":
        return 0.85 if step_ratio <= 0.1 else 0.95 if step_ratio <= 0.25 else 0.99
    return iou_threshold


def _iou_scores(pred: list, gt: list, credited: list, cw: Any) -> dict[str, Any]:
    n_m = len(credited)
    mean_iou = sum(credited) / len(gt) if credited else 0.0
    miss = (len(gt) - n_m) / len(gt)
    false_alarm = 0.0 if len(pred) == 0 else (len(pred) - n_m) / len(pred)
    completeness = 1.0 - (miss + false_alarm) / 2.0
    return {
        "mean_iou_score": mean_iou,
        "precision": 1 - false_alarm,
        "recall": 1 - miss,
        "weighted_iou_score": mean_iou * (1.0 - cw) + completeness * cw,
    }


def zero_scores() -> dict[str, float]:
    keys = ["size_penalty", "pure_iou_score_max_iou", "pure_iou_score_max_label", "pure_map_score", "pure_map50_score",
            "pure_map75_score", "weighted_iou_score_max_iou", "weighted_iou_score_max_label", "weighted_map_score",
            "weighted_map50_score", "weighted_map75_score"]  # fmt: skip
    for strategy, thr in _REPORTS:
        for part in ("pure", "precision", "recall"):
            keys.append(f"report_iou_{round(thr * 100)}_{strategy}_match_{part}")
    return {"final_score": 0.0, **{k: 0.0 for k in keys}}


def verify_accuracy(
    response: str, solution: Any, ratios: dict[str, Any], normalized: Any, grid_thw: Any, select: Any
) -> tuple[dict[str, Any], list, list]:
    """(released result dict, pred boxes, gt boxes). Raises where the released code raises."""
    result = zero_scores()
    pred = released_boxes(answer_content(response.strip()).lower())
    gt = released_boxes(answer_content(solution.strip()).lower())
    if gt is None or pred is None:
        return result, pred or [], gt or []
    if normalized and grid_thw is not None and len(grid_thw) > 0:
        normalize_in_place(pred, width=grid_thw[0][2], height=grid_thw[0][1])
    penalty = 0.6 ** abs(len(pred) - len(gt))
    table = iou_table(pred, gt)
    cw = ratios["iou_completeness"]
    gathered: dict[str, dict[Any, dict[str, Any]]] = {"iou": {}, "label": {}}
    for strategy, matcher in (("iou", match_iou_first_released), ("label", match_label_first_released)):
        for thr in THRESHOLDS:
            gathered[strategy][thr] = _iou_scores(pred, gt, matcher(pred, gt, table, thr), cw)
        gathered[strategy]["average"] = {
            "weighted_iou_score": sum(gathered[strategy][t]["weighted_iou_score"] for t in THRESHOLDS)
            / len(THRESHOLDS)
        }
    for strategy, thr in _REPORTS:
        rep = gathered[strategy][thr]
        prefix = f"report_iou_{round(thr * 100)}_{strategy}_match"
        result[f"{prefix}_pure"], result[f"{prefix}_precision"], result[f"{prefix}_recall"] = (
            rep["mean_iou_score"], rep["precision"], rep["recall"])  # fmt: skip
    iou_iou = gathered["iou"][select]["weighted_iou_score"]
    iou_label = gathered["label"][select]["weighted_iou_score"]
    m, m50, m75 = coco_map(
        [(p["bbox_2d"], p["label"]) for p in pred], [(g["bbox_2d"], g["label"]) for g in gt]
    )
    weighted = [iou_iou * penalty, iou_label * penalty, m * penalty, m50 * penalty, m75 * penalty]
    r = [float(ratios["iou_max_iou_first"]), float(ratios["iou_max_label_first"]), float(ratios["map"]),
         float(ratios["map50"]), float(ratios["map75"])]  # fmt: skip
    norm = r[0] + r[1] + r[2] + r[3] + r[4]
    if norm > 0:
        final = (
            weighted[0] * r[0]
            + weighted[1] * r[1]
            + weighted[2] * r[2]
            + weighted[3] * r[3]
            + weighted[4] * r[4]
        )
        final /= norm
    else:
        final = 0.0
    result.update(
        final_score=final, size_penalty=penalty, pure_iou_score_max_iou=iou_iou, pure_iou_score_max_label=iou_label,
        pure_map_score=m, pure_map50_score=m50, pure_map75_score=m75, weighted_iou_score_max_iou=weighted[0],
        weighted_iou_score_max_label=weighted[1], weighted_map_score=weighted[2], weighted_map50_score=weighted[3],
        weighted_map75_score=weighted[4],
    )  # fmt: skip
    return result, pred, gt
