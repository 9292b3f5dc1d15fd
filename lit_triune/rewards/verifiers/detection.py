"""`detection`: boxes with labels, scored by IoU (label-first greedy), completeness, count penalty and mAP.

The V-Triune detection reward: mean IoU of label-matched pairs (`IoU if IoU >= eps else 0`),
mixed with completeness `1 - (miss + false_alarm)/2` by `iou_completeness`, times the count penalty
`0.6^|#pred - #gt|`, combined with COCO mAP / AP50 / AP75 by `det_reward_ratio`. The plain `det_reward: "iou"`
and `"map"` modes take the count penalty too: mean IoU over the ground truth and AP ignore an extra box, so
listing every candidate would otherwise cost nothing. Differences from the
released server (use compat="vtriune" for its exact numbers): predictions are converted to the 0-1000
frame as floats rather than truncated ints, duplicates are kept (they count as false alarms), the
IoU-first matcher credits the pair it found, and a single threshold (default 0.5) replaces 'average'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lit_triune.boxes import Box, BoxSpec, read_box_spec, read_boxes
from lit_triune.rewards.coco import coco_map
from lit_triune.rewards.matching import iou_matrix, match_iou_first, match_label_first, norm_label
from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import NAN, Context, Verdict, failed
from lit_triune.rewards.text import AnswerError
from lit_triune.rewards.verifiers._common import response_text, threshold, truth_text

RATIO_KEYS = ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75")
WEIGHT_KEYS = ("iou_max_iou_first", "iou_max_label_first", "map", "map50", "map75")
DEFAULT_RATIOS = {"iou_max_label_first": 1.0, "iou_completeness": 0.3}  # Orsta's detection rows
MODES = ("combined", "iou", "map")


def ratios_of(p: Mapping[str, Any]) -> dict[str, float]:
    """`det_reward_ratio` with None -> 0; ValueError if a value is not in [0, 1] or every weight is 0."""
    raw = p.get("det_reward_ratio")
    if raw is None:
        raw = DEFAULT_RATIOS
    if not isinstance(raw, Mapping):
        raise ValueError(f"det_reward_ratio must be a dict with keys {RATIO_KEYS}, got {raw!r}")
    out = {}
    for key in RATIO_KEYS:
        value = raw.get(key)
        value = 0.0 if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"det_reward_ratio[{key!r}] must be a number in [0, 1], got {value!r}")
        out[key] = float(value)
    if p.get("det_reward", "combined") == "combined" and sum(out[k] for k in WEIGHT_KEYS) <= 0:
        raise ValueError(
            f"det_reward_ratio gives every reward term ({', '.join(WEIGHT_KEYS)}) weight 0: accuracy would always be 0"
        )
    return out


def penalty_base_of(p: Mapping[str, Any]) -> float:
    """`count_penalty_base` (default 0.6); ValueError unless a number in [0, 1): at 1 or above an extra box
    would cost nothing (or pay), and a negative base flips the sign of the reward."""
    base = p.get("count_penalty_base", 0.6)
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not 0.0 <= base < 1.0:
        raise ValueError(f"verifier_parm['count_penalty_base'] must be a number in [0, 1), got {base!r}")
    return float(base)


def _fixed(box: Box) -> Box:
    """Inverted boxes become zero-area so they are false positives, not silently ignored, in mAP."""
    return Box(box.x1, box.y1, max(box.x1, box.x2), max(box.y1, box.y2), box.label)


def _read(reward_model: Mapping[str, Any]) -> tuple[BoxSpec, dict[str, float]]:
    """The sample's spec, read and checked once: (boxes, frame and verifier_parm; det_reward_ratio)."""
    spec = read_box_spec(reward_model, truth_text(reward_model), allow_empty=True, shared=True)
    if spec.parm.get("det_reward", "combined") not in MODES:
        raise ValueError(
            f"verifier_parm['det_reward'] must be one of {MODES}, got {spec.parm.get('det_reward')!r}"
        )
    penalty_base_of(spec.parm)
    return spec, ratios_of(spec.parm)


@register_verifier("detection")
class DetectionVerifier(Verifier):
    def check(self, reward_model: Mapping[str, Any]) -> None:
        _read(reward_model)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        try:
            spec, ratios = _read(reward_model)
            spec.require_size(ctx.image_size)
        except ValueError as err:
            return failed("spec", str(err))
        p, gt = spec.parm, spec.boxes
        try:  # several <answer> blocks are several candidate lists: the policy must commit to one
            text = response_text(response)
        except AnswerError as err:
            return Verdict(0.0, {"iou": 0.0, "recall": 0.0, "map": 0.0, "map50": 0.0, "map75": 0.0}, "parse", str(err),
                           {"pred_boxes": [], "gt_boxes": [list(b.xyxy) for b in spec.truth_in_pixels(ctx.image_size)]})
        raw_pred, skipped = read_boxes(text)
        pred = spec.in_truth_frame(raw_pred, ctx.image_size)
        extras = {
            "pred_boxes": [list(b.xyxy) for b in raw_pred],
            "gt_boxes": [list(b.xyxy) for b in spec.truth_in_pixels(ctx.image_size)],
        }
        n_p, n_g = len(pred), len(gt)
        if n_g == 0:
            acc = 1.0 if n_p == 0 else 0.0
            return Verdict(acc, {"iou": NAN, "precision": 0.0 if n_p else NAN, "recall": NAN}, extras=extras)
        if n_p == 0:
            detail = f"no box read from the answer ({skipped} malformed items)"
            return Verdict(
                0.0,
                {"iou": 0.0, "recall": 0.0, "map": 0.0, "map50": 0.0, "map75": 0.0},
                "parse",
                detail,
                extras,
            )
        eps = threshold(ctx.iou_threshold)
        ious = iou_matrix(pred, gt)  # [P, G]
        cw = ratios["iou_completeness"]

        def weighted(matches: list) -> tuple[float, float, float]:
            mean_iou = sum(m.iou for m in matches) / n_g
            completeness = 1.0 - ((n_g - len(matches)) / n_g + (n_p - len(matches)) / n_p) / 2.0
            return mean_iou * (1.0 - cw) + completeness * cw, mean_iou, completeness

        label_matches = match_label_first(pred, gt, ious, eps)
        w_label, mean_iou, completeness = weighted(label_matches)
        w_iou = weighted(match_iou_first(pred, gt, ious, eps))[0] if ratios["iou_max_iou_first"] > 0 else 0.0
        fixed = [_fixed(b) for b in pred]
        m, m50, m75 = coco_map(
            [(b.xyxy, norm_label(b.label)) for b in fixed], [(b.xyxy, norm_label(b.label)) for b in gt]
        )
        penalty = penalty_base_of(p) ** abs(n_p - n_g)
        mode = p.get("det_reward", "combined")
        if mode == "iou":  # the count penalty in every mode: an extra box must never be free (issue 17)
            acc = mean_iou * penalty
        elif mode == "map":
            acc = m * penalty
        else:
            terms = {
                "iou_max_iou_first": w_iou,
                "iou_max_label_first": w_label,
                "map": m,
                "map50": m50,
                "map75": m75,
            }
            acc = sum(terms[k] * penalty * ratios[k] for k in WEIGHT_KEYS) / sum(
                ratios[k] for k in WEIGHT_KEYS
            )
        scores = {
            "iou": mean_iou, "precision": len(label_matches) / n_p, "recall": len(label_matches) / n_g,
            "completeness": completeness, "count_penalty": penalty, "map": m, "map50": m50, "map75": m75,
        }  # fmt: skip
        return Verdict(acc, scores, extras=extras)
