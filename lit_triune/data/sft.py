"""Supervised warm-start targets: the completion a verifier scores as fully correct.

Box answers are written in absolute pixels of the image as the model sees it, because that is
what Qwen2.5-VL predicts; a normalised (0-1000) ground truth is converted with `image_size`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lit_triune.data.boxes import (
    box_verifiers,
    format_boxes,
    is_normalized,
    parse_boxes,
    to_pixels,
    verifier_parm,
)

_TAGS = re.compile(r"^\s*<answer>(.*)</answer>\s*$", re.S)
DEFAULT_THINK = {"counting": "I count the objects.", "detection": "I locate each object.",
                 "grounding": "I find the object.", "ocr": "I read the text.", "mathverify": "I work it out."}


def sft_target(reward_model: Mapping[str, Any], image_size: tuple[int, int] | None = None,
               think: str | None = None) -> str:
    """`<think>...</think><answer>...</answer>` for a spec whose ground truth is in its verifier's frame.

    Args:
        reward_model: the spec as the DataModule yields it (`PromptBatch.reward_models[i]`).
        image_size: (height, width) as the model sees the image; needed for normalised boxes.
        think: the rationale text; defaults to a short sentence per verifier.
    """
    verifier = reward_model["verifier"]
    gt = str(reward_model["ground_truth"])
    normalized = is_normalized(verifier_parm(reward_model))
    if verifier in box_verifiers():
        parsed = parse_boxes(gt, normalized=normalized)
        boxes = parsed.boxes
        if normalized:
            if image_size is None:
                raise ValueError("image_size is required for normalised (0-1000) box ground truth")
            boxes = to_pixels(boxes, image_size)
        answer = format_boxes(boxes, bare=parsed.bare, as_int=True)
    else:
        m = _TAGS.match(gt)
        answer = (m.group(1) if m else gt).strip()
    text = think if think is not None else DEFAULT_THINK.get(verifier, "I work it out.")
    return f"<think>{text}</think><answer>{answer}</answer>"
