"""`grounding`: one referred box; accuracy is the paper's IoU reward `IoU if IoU >= eps else 0`.

The answer must hold exactly one box in one `<answer>` block: with several, a policy could list every
candidate and be paid for the one that fits (the first box read was scored), so more are a `parse` failure.

verifier_parm: `normalized` (or Orsta's `det_verifier_normalized`): ground truth in the 0-1000 frame,
predictions converted from pixels of `image_size`; `binary`: score 1 instead of the IoU when it clears eps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lit_triune.boxes import BoxSpec, read_box_spec, read_boxes
from lit_triune.rewards.matching import box_iou
from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import Context, Verdict, failed
from lit_triune.rewards.text import AnswerError
from lit_triune.rewards.verifiers._common import response_text, threshold, truth_text

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")  # a standalone number (not the 2 of bbox_2d)


def _read(reward_model: Mapping[str, Any]) -> BoxSpec:
    """The sample's spec, read once; the referred box is the first ground-truth box."""
    return read_box_spec(reward_model, truth_text(reward_model), shared=True)


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
        gt_px = [list(b.xyxy) for b in spec.truth_in_pixels(ctx.image_size)[:1]]
        try:
            text = response_text(response)
        except AnswerError as err:
            return Verdict(0.0, {"iou": 0.0}, "parse", str(err), {"gt_boxes": gt_px, "pred_boxes": []})
        boxes, _ = read_boxes(text)
        extras: dict[str, Any] = {"gt_boxes": gt_px, "pred_boxes": [list(b.xyxy) for b in boxes[:1]]}
        if not boxes:
            return Verdict(0.0, {"iou": 0.0}, "parse", "no box read from the answer", extras)
        numbers = len(_NUMBER.findall(text))  # the box reader takes the first literal: count what else is there
        if len(boxes) > 1 or numbers > 4:
            return Verdict(0.0, {"iou": 0.0}, "parse", f"{max(len(boxes), numbers // 4)} boxes or more numbers than "
                           f"one box ({numbers}); grounding takes exactly one box", extras)
        pred = spec.in_truth_frame(boxes[:1], ctx.image_size)[0]
        iou = box_iou(pred.xyxy, gt.xyxy)
        hit = iou >= threshold(ctx.iou_threshold)
        acc = (1.0 if spec.parm.get("binary") else iou) if hit else 0.0
        return Verdict(acc, {"iou": iou}, extras=extras)
