"""`grounding`: one referred box; accuracy is the paper's IoU reward `IoU if IoU >= eps else 0`.

verifier_parm: `normalized` (or Orsta's `det_verifier_normalized`): ground truth in the 0-1000 frame,
predictions converted from pixels of `image_size`; `binary`: score 1 instead of the IoU when it clears eps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lit_triune.boxes import BoxSpec, read_box_spec, read_boxes
from lit_triune.rewards.matching import box_iou
from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import Context, Verdict, failed
from lit_triune.rewards.verifiers._common import response_text, threshold, truth_text


def _read(reward_model: Mapping[str, Any]) -> BoxSpec:
    """The sample's spec, read once; the referred box is the first ground-truth box."""
    return read_box_spec(reward_model, truth_text(reward_model))


@register_verifier("grounding")
class GroundingVerifier(Verifier):
    def check(self, reward_model: Mapping[str, Any]) -> None:
        _read(reward_model)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        try:
            spec = _read(reward_model)
            spec.require_size(ctx.image_size)
        except ValueError as err:
            return failed("spec", str(err))
        gt = spec.boxes[0]
        boxes, _ = read_boxes(response_text(response))
        extras: dict[str, Any] = {
            "gt_boxes": [list(b.xyxy) for b in spec.truth_in_pixels(ctx.image_size)[:1]],
            "pred_boxes": [list(boxes[0].xyxy)] if boxes else [],
        }
        if not boxes:
            return Verdict(0.0, {"iou": 0.0}, "parse", "no box read from the answer", extras)
        pred = spec.in_truth_frame(boxes[:1], ctx.image_size)[0]
        iou = box_iou(pred.xyxy, gt.xyxy)
        hit = iou >= threshold(ctx.iou_threshold)
        acc = (1.0 if spec.parm.get("binary") else iou) if hit else 0.0
        return Verdict(acc, {"iou": iou}, extras=extras)
