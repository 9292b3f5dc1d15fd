"""The released reward server's box handling, re-implemented behaviour for behaviour.

Source of truth: MiniMax-AI/One-RL-to-See-Them-All `reward_server/utils/det_helper.py` and the
detection verifier in `reward_server/verify.py`. Quirks kept on purpose (compat mode must score
Orsta rows exactly as that server does): the string surgery before `json.loads` ('[[' -> '[', quote
swapping, backslash removal, truncated lists closed after the last '},'), duplicate boxes dropped by
position, int-truncating 0-1000 normalisation, and the IoU-first matcher that credits the maximum
IoU to the *last* unmatched pair it looped over. `json.loads` is a data parser, not `eval`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

_OPEN, _CLOSE = "<answer>", "</answer>"


def answer_content(text: str) -> str:
    """Same result as `re.search(r'<answer>(.*?)</answer>', text, re.DOTALL).group(1).strip()` or '', in linear time."""
    start = text.find(_OPEN)
    if start < 0:
        return ""
    end = text.find(_CLOSE, start + len(_OPEN))
    if end < 0:
        return ""
    return text[start + len(_OPEN) : end].strip()


def _valid_item(item: Any) -> bool:
    if not (isinstance(item, dict) and "bbox_2d" in item and "label" in item):
        return False
    box = item["bbox_2d"]
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(c, (int, float)) for c in box)  # bools pass, as in the released check
        and box[0] <= box[2]
        and box[1] <= box[3]
        and isinstance(item["label"], str)
    )


def released_boxes(text: str) -> list[dict[str, Any]] | None:
    """The released `extract_bbox`: list of {'bbox_2d', 'label', ...} dicts, or None when nothing valid parses."""
    if not text or not text.strip():
        return None
    text = text.replace("[[", "[").replace("]]", "]")
    if not text.endswith("]"):
        text = text.rsplit("},", 1)[0] + "}]"
    text = text.replace("'", '"').replace("\\", "")
    try:
        items = json.loads(text)
    except Exception:  # JSONDecodeError, RecursionError, int-digit limit: all mean "no boxes"
        return None
    if not isinstance(items, list):
        return None
    out, seen = [], set()
    for item in items:
        if _valid_item(item):
            key = tuple(item["bbox_2d"])
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out or None


def detection_format(response: str) -> float:
    """The released detection `verify_format`: 1.0 or 0.0, never raises."""
    try:
        if response.count("\n<answer>\n") and response.count("\n</answer>") == 1:
            boxes = released_boxes(answer_content(response.strip()).lower())
            return 1.0 if boxes else 0.0
        return 0.0
    except Exception:
        return 0.0


def normalize_in_place(boxes: list[dict[str, Any]], width: Any, height: Any) -> None:
    """Released `normalize_bbox_by_real_size`: int() truncation; only Key/Value/TypeError are skipped per box."""
    for box in boxes:
        try:
            x1, y1, x2, y2 = box["bbox_2d"]
            scaled = [
                int(x1 / width * 1000.0),
                int(y1 / height * 1000.0),
                int(x2 / width * 1000.0),
                int(y2 / height * 1000.0),
            ]
            box["bbox_2d"] = scaled
        except (KeyError, ValueError, TypeError):
            continue


def compute_iou(a: Any, b: Any) -> float:
    """Released `compute_iou`, same operation order (ints stay exact until the final division)."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    if ix2 <= ix1 or iy2 <= iy1:
        return 0.0
    inter = (ix2 - ix1) * (iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter) / union


def iou_table(pred: list[dict[str, Any]], gt: list[dict[str, Any]]) -> np.ndarray:  # [P, G]
    table = np.zeros((len(pred), len(gt)))
    for i, p in enumerate(pred):
        for j, g in enumerate(gt):
            table[i][j] = compute_iou(p["bbox_2d"], g["bbox_2d"])
    return table


def match_iou_first_released(
    pred: list[dict[str, Any]], gt: list[dict[str, Any]], table: np.ndarray, thr: float
) -> list[float]:
    """Credited IoUs of the released IoU-first matcher, bug included.

    Its loop variables shadow the argmax indices, so each round pairs the last unmatched prediction
    with the last unmatched ground truth; they are removed, so round k pairs (P-1-k, G-1-k) and takes
    the maximum over the leading (P-k) x (G-k) block, crediting it only if those two labels agree.
    """
    credited: list[float] = []
    n_p, n_g = len(pred), len(gt)
    for k in range(min(n_p, n_g)):
        block = table[: n_p - k, : n_g - k]
        finite = block[~np.isnan(block)]
        best = finite.max() if finite.size and finite.max() > -1 else -1
        if best < thr:
            break
        same = pred[n_p - 1 - k]["label"].lower() == gt[n_g - 1 - k]["label"].lower()
        credited.append(best if same else 0.0)
    return credited


def match_label_first_released(
    pred: list[dict[str, Any]], gt: list[dict[str, Any]], table: np.ndarray, thr: float
) -> list[Any]:
    """Credited IoUs of the released label-first matcher (np.max / np.argmax over same-label candidates)."""
    credited: list[Any] = []
    used: set[int] = set()
    for j, g in enumerate(gt):
        label = g["label"].lower()
        cands = [i for i, p in enumerate(pred) if i not in used and p["label"].lower() == label]
        if not cands:
            continue
        scores = [float(table[i][j]) for i in cands]
        best, arg = np.max(scores), int(np.argmax(scores))
        if best >= thr:
            credited.append(best)
            used.add(cands[arg])
    return credited
