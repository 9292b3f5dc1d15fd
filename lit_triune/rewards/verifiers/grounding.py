"""`grounding`: one referred box; accuracy is the paper's IoU reward `IoU if IoU >= eps else 0`.

verifier_parm: `normalized` (or Orsta's `det_verifier_normalized`): ground truth in the 0-1000 frame,
predictions converted from pixels of `image_size`; `binary`: score 1 instead of the IoU when it clears eps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lit_triune.rewards.boxes import box_iou, to_normalized, to_pixels
from lit_triune.rewards.boxparse import parse_boxes
from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import Context, Verdict, failed
from lit_triune.rewards.verifiers._common import is_normalized, parm, response_text, threshold, truth_boxes


@register_verifier("grounding")
class GroundingVerifier(Verifier):
    def check(self, reward_model: Mapping[str, Any]) -> None:
        parm(reward_model)
        truth_boxes(reward_model, single=True)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        try:
            p = parm(reward_model)
            gt = truth_boxes(reward_model, single=True)[0]
        except ValueError as err:
            return failed("spec", str(err))
        normalized = is_normalized(p)
        if normalized and ctx.image_size is None:
            return failed(
                "spec", "ground truth is in the 0-1000 frame (normalized) but no image_size was given"
            )
        boxes, _ = parse_boxes(response_text(response))
        gt_px = to_pixels([gt], ctx.image_size)[0] if normalized and ctx.image_size else gt
        extras: dict[str, Any] = {
            "gt_boxes": [list(gt_px.xyxy)],
            "pred_boxes": [list(boxes[0].xyxy)] if boxes else [],
        }
        if not boxes:
            return Verdict(0.0, {"iou": 0.0}, "parse", "no box read from the answer", extras)
        pred = to_normalized(boxes[:1], ctx.image_size)[0] if normalized else boxes[0]  # type: ignore[arg-type]
        iou = box_iou(pred.xyxy, gt.xyxy)
        hit = iou >= threshold(ctx.iou_threshold)
        acc = (1.0 if p.get("binary") else iou) if hit else 0.0
        return Verdict(acc, {"iou": iou}, extras=extras)
