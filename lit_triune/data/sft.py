"""Supervised warm-start targets: the completion a verifier scores as fully correct.

Box answers are written in absolute pixels of the image as the model sees it, because that is
what Qwen2.5-VL predicts; a normalised (0-1000) ground truth is converted with `image_size`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lit_triune.boxes import box_verifiers, format_boxes, read_box_spec

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
    if verifier in box_verifiers():
        spec = read_box_spec(reward_model)
        answer = format_boxes(spec.truth_in_pixels(image_size), bare=spec.truth.bare, as_int=True)
    else:
        gt = str(reward_model["ground_truth"])
        m = _TAGS.match(gt)
        answer = (m.group(1) if m else gt).strip()
    text = think if think is not None else DEFAULT_THINK.get(verifier, "I work it out.")
    return f"<think>{text}</think><answer>{answer}</answer>"
