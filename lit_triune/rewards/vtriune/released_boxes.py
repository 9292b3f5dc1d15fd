"""Boxes as the released V-Triune reward server reads and compares them (compat mode only).

Behaviour reproduced (see NOTICE), not its code: MiniMax-AI/One-RL-to-See-Them-All,
`reward_server/utils/det_helper.py` and the detection verifier of `reward_server/verify.py`.
Quirks kept on purpose, because compat mode must score Orsta rows exactly as that server did:

* the answer text is repaired by string surgery and handed to `json.loads` (a data parser, not
  `eval`): nested brackets flattened, a cut-off list closed after its last complete item, single
  quotes turned into double quotes, backslashes dropped;
* a box needs a string label and four numbers (bools count) with x1 <= x2 and y1 <= y2; a second box
  at the same position is dropped; nothing valid reads as None, not as an empty list;
* predictions go to the 0-1000 frame by int() truncation;
* its IoU-first matcher credits each round's best IoU to the last unmatched pair (see below).

Everything else here is plain box geometry; the default mode's own versions live in
`lit_triune.boxes` and `lit_triune.rewards.matching`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

_OPEN, _CLOSE = "<answer>", "</answer>"


def answer_content(text: str) -> str:
    """The first `<answer>...</answer>` block, stripped; '' when there is none (a linear scan, no regex)."""
    start = text.find(_OPEN)
    if start < 0:
        return ""
    end = text.find(_CLOSE, start + len(_OPEN))
    return "" if end < 0 else text[start + len(_OPEN) : end].strip()


def _repaired(text: str) -> str:
    """The text the server gives `json.loads`."""
    text = text.replace("[[", "[").replace("]]", "]")
    if not text.endswith("]"):
        cut = text.rfind("},")
        text = (text if cut < 0 else text[:cut]) + "}]"
    return text.replace("'", '"').replace("\\", "")


def _kept(item: Any) -> bool:
    """Whether the server keeps a decoded list item as a box."""
    if not isinstance(item, dict) or "bbox_2d" not in item or "label" not in item:
        return False
    coords = item["bbox_2d"]
    if not (isinstance(coords, list) and len(coords) == 4 and isinstance(item["label"], str)):
        return False
    if not all(isinstance(c, (int, float)) for c in coords):
        return False
    x1, y1, x2, y2 = coords
    return x1 <= x2 and y1 <= y2


def released_boxes(text: str) -> list[dict[str, Any]] | None:
    """The server's box list for an answer: its dicts in order, first of each position; None if none is valid."""
    if not text or not text.strip():
        return None
    try:
        decoded = json.loads(_repaired(text))
    except Exception:  # a decode error, RecursionError or the int-digit limit: all read as "no boxes"
        return None
    if not isinstance(decoded, list):
        return None
    by_position: dict[tuple, dict[str, Any]] = {}
    for item in filter(_kept, decoded):
        by_position.setdefault(tuple(item["bbox_2d"]), item)
    return list(by_position.values()) or None


def detection_format(response: str) -> float:
    """The server's detection format score: 1.0 for a newline-tagged answer block whose boxes it reads, else 0.0."""
    try:
        if "\n<answer>\n" not in response or response.count("\n</answer>") != 1:
            return 0.0
        return 1.0 if released_boxes(answer_content(response.strip()).lower()) else 0.0
    except Exception:
        return 0.0


def to_thousandths(boxes: list[dict[str, Any]], width: Any, height: Any) -> list[dict[str, Any]]:
    """Boxes with pixel coordinates moved to the 0-1000 frame as the server does it, `int(v / size * 1000.0)`.

    A box whose arithmetic raises KeyError, ValueError or TypeError is left as it was; any other error
    (a zero size, an infinite coordinate) propagates, and the server scores the sample 0.
    """
    sizes = (width, height, width, height)
    out = []
    for box in boxes:
        try:
            scaled = [int(v / size * 1000.0) for v, size in zip(box["bbox_2d"], sizes, strict=True)]
        except (KeyError, ValueError, TypeError):
            out.append(box)
        else:
            out.append({**box, "bbox_2d": scaled})
    return out


def released_iou(a: Any, b: Any) -> float:
    """IoU of two [x1, y1, x2, y2] boxes; integer coordinates stay exact up to the single division."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    if right <= left or bottom <= top:
        return 0.0
    overlap = (right - left) * (bottom - top)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return float(overlap) / (area_a + area_b - overlap)


def iou_table(pred: list[dict[str, Any]], gt: list[dict[str, Any]]) -> np.ndarray:  # [P, G]
    rows = [[released_iou(p["bbox_2d"], g["bbox_2d"]) for g in gt] for p in pred]
    return np.array(rows, dtype=np.float64).reshape(len(pred), len(gt))


def match_iou_first_released(
    pred: list[dict[str, Any]], gt: list[dict[str, Any]], table: np.ndarray, thr: float
) -> list[float]:
    """IoUs the server's IoU-first matcher credits, its bug included.

    Its loop variables shadow the argmax indices, so each round pairs the last unmatched prediction
    with the last unmatched ground truth and removes those two: round k pairs (P-1-k, G-1-k) and
    takes the maximum over the leading (P-k) x (G-k) block, credited only if those two labels agree.
    """
    credited: list[float] = []
    n_p, n_g = len(pred), len(gt)
    for k in range(min(n_p, n_g)):
        block = table[: n_p - k, : n_g - k]
        values = block[~np.isnan(block)]  # NaN never wins a ">" comparison
        best = values.max() if values.size and values.max() > -1 else -1
        if best < thr:
            break
        same_label = pred[n_p - 1 - k]["label"].lower() == gt[n_g - 1 - k]["label"].lower()
        credited.append(best if same_label else 0.0)
    return credited


def match_label_first_released(
    pred: list[dict[str, Any]], gt: list[dict[str, Any]], table: np.ndarray, thr: float
) -> list[Any]:
    """IoUs the server's label-first matcher credits: per ground-truth box in order, the free prediction
    of the same label with the highest IoU (first on a tie, NaN propagating as numpy's max does)."""
    credited: list[Any] = []
    free = np.ones(len(pred), dtype=bool)
    pred_labels = [p["label"].lower() for p in pred]
    for j, g in enumerate(gt):
        label = g["label"].lower()
        candidates = [i for i, pl in enumerate(pred_labels) if free[i] and pl == label]
        if not candidates:
            continue
        column = table[candidates, j]
        best = column.max()
        if best >= thr:
            credited.append(best)
            free[candidates[int(column.argmax())]] = False
    return credited
