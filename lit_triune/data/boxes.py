"""Box ground truth: parsing without eval, frame conversion, and Qwen2.5-VL's resize rule.

Orsta stores detection/grounding ground truth in 0-1000 normalised coordinates, while
Qwen2.5-VL predicts absolute pixels of the *resized* image. Getting the frame wrong gives
near-zero IoU silently, so the frame is explicit per sample: `verifier_parm["normalized"]`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

NORMALIZED_MAX = 1000.0
_MAX_TEXT = 100_000  # ground truth longer than this is rejected before any regex runs
_OBJECT = re.compile(r"\{[^{}]{0,2000}\}")
_BBOX = re.compile(r"""["']bbox_2d["']\s*:\s*\[([^\[\]]{0,400})\]""")
_LABEL = re.compile(r"""["']label["']\s*:\s*(?:"((?:[^"\\]|\\.){0,400})"|'((?:[^'\\]|\\.){0,400})')""")
_BARE = re.compile(r"^\s*\[([^\[\]{}]{0,400})\]\s*$")
_TAGS = re.compile(r"^\s*<answer>(.*)</answer>\s*$", re.S)


def box_verifiers() -> frozenset[str]:
    """Verifiers whose ground truth is boxes (and so whose frame matters)."""
    return frozenset({"detection", "grounding"})


def verifier_parm(reward_model) -> dict:
    """`verifier_parm` as a dict; Orsta sometimes stores it as a JSON string, and None means {}."""
    parm = reward_model.get("verifier_parm")
    if isinstance(parm, str):
        import json

        try:
            parm = json.loads(parm) if parm.strip() else {}
        except json.JSONDecodeError as err:
            raise ValueError(f"verifier_parm is a string but not JSON: {parm[:80]!r}") from err
    if parm is None:
        return {}
    if not isinstance(parm, dict):
        raise ValueError(f"verifier_parm must be a dict, JSON string or null, got {type(parm).__name__}")
    return parm


def is_normalized(parm: dict) -> bool:
    """Ground truth in 0-1000: `normalized` (ours) or `det_verifier_normalized` (Orsta's released key)."""
    return bool(parm.get("normalized", parm.get("det_verifier_normalized", False)))


class BoxError(ValueError):
    """Ground-truth boxes that cannot be used: unparsable, NaN, inverted or out of range."""


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    label: str | None = None

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy, self.label)

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)


@dataclass(frozen=True)
class BoxAnswer:
    """Parsed box ground truth plus how it was written, so re-serialising keeps the style."""

    boxes: list[Box]
    bare: bool  # a single `[x1, y1, x2, y2]` instead of `[{'bbox_2d': ..., 'label': ...}]`
    tagged: bool  # wrapped in <answer>...</answer>


def _numbers(text: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError as err:
        raise BoxError(f"box coordinates must be 4 numbers, got [{text}]") from err
    if len(values) != 4:
        raise BoxError(f"a box has 4 coordinates [x1, y1, x2, y2], got {len(values)}: [{text}]")
    return values


def check_box(box: Box, *, normalized: bool, size: tuple[int, int] | None = None) -> None:
    """Raise BoxError for NaN/inf, inverted or empty boxes, or coordinates outside the frame."""
    coords = (box.x1, box.y1, box.x2, box.y2)
    if not all(math.isfinite(c) for c in coords):
        raise BoxError(f"box has a non-finite coordinate: {list(coords)}")
    if box.x2 <= box.x1 or box.y2 <= box.y1:
        raise BoxError(f"box is inverted or empty (need x1 < x2 and y1 < y2): {list(coords)}")
    if min(coords) < 0:
        raise BoxError(f"box has a negative coordinate: {list(coords)}")
    if normalized and max(coords) > NORMALIZED_MAX:
        raise BoxError(f"normalised box must lie in 0..1000, got {list(coords)}")
    if size is not None and not normalized:
        h, w = size
        if box.x2 > w + 0.5 or box.y2 > h + 0.5:
            raise BoxError(f"box {list(coords)} exceeds the image (height {h}, width {w})")


def parse_boxes(text: str, *, normalized: bool, size: tuple[int, int] | None = None) -> BoxAnswer:
    """Parse `[{'bbox_2d': [...], 'label': ...}, ...]` or a bare `[x1, y1, x2, y2]`, tags optional."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        raise BoxError(f"box ground truth must be a string under {_MAX_TEXT} characters")
    tagged_match = _TAGS.match(text)
    body = tagged_match.group(1) if tagged_match else text
    bare = _BARE.match(body)
    if bare:
        boxes = [Box(*_numbers(bare.group(1)))]
    else:
        boxes = []
        for obj in _OBJECT.findall(body):
            coords = _BBOX.search(obj)
            if coords is None:
                raise BoxError(f"object without 'bbox_2d': {obj[:80]}")
            label = _LABEL.search(obj)
            name = None if label is None else (label.group(1) if label.group(1) is not None else label.group(2))
            boxes.append(Box(*_numbers(coords.group(1)), label=name))
        if not boxes:
            raise BoxError(f"no boxes found in ground truth {body.strip()[:80]!r}")
    for box in boxes:
        check_box(box, normalized=normalized, size=size)
    return BoxAnswer(boxes, bare=bool(bare), tagged=bool(tagged_match))


def _num(v: float) -> str:
    r = round(v, 2)
    return str(int(r)) if r == int(r) else str(r)


def format_boxes(boxes: list[Box], *, bare: bool = False, tagged: bool = False, as_int: bool = False) -> str:
    """Serialise in Orsta's style: `[{'bbox_2d': [x1, y1, x2, y2], 'label': 'dog'}]`."""

    def coords(b: Box) -> str:
        vals = [b.x1, b.y1, b.x2, b.y2]
        return "[" + ", ".join(str(int(round(v))) if as_int else _num(v) for v in vals) + "]"

    if bare:
        if len(boxes) != 1:
            raise BoxError(f"a bare box answer holds exactly one box, got {len(boxes)}")
        body = coords(boxes[0])
    else:
        items = []
        for b in boxes:
            label = (b.label or "").replace("\\", "\\\\").replace("'", "\\'")
            items.append(f"{{'bbox_2d': {coords(b)}, 'label': '{label}'}}")
        body = "[" + ", ".join(items) + "]"
    return f"<answer>\n{body}\n</answer>" if tagged else body


def to_pixels(boxes: list[Box], size: tuple[int, int]) -> list[Box]:
    """0-1000 normalised -> absolute pixels of an image of (height, width) `size`."""
    h, w = size
    return [b.scaled(w / NORMALIZED_MAX, h / NORMALIZED_MAX) for b in boxes]


def rescale(boxes: list[Box], src: tuple[int, int], dst: tuple[int, int]) -> list[Box]:
    """Absolute pixels of an image of (h, w) `src` -> the same boxes after resizing it to `dst`."""
    return [b.scaled(dst[1] / src[1], dst[0] / src[0]) for b in boxes]


def smart_resize(height: int, width: int, *, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule: both sides multiples of `factor`, area within [min, max] pixels.

    Same arithmetic as the processor, so images resized here are not resized again by it.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height} width={width}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be under 200, got {height}x{width}")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w
