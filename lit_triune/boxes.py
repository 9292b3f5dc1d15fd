"""Boxes, their frames and the box part of a reward spec: one module for data and rewards.

Orsta stores detection/grounding ground truth in a 0-1000 normalised frame, while Qwen2.5-VL
predicts absolute pixels of the *resized* image; comparing the two unconverted gives near-zero IoU
silently. So the frame is explicit per sample (`verifier_parm["normalized"]`, or Orsta's
`det_verifier_normalized`) and every conversion between frames lives here.

Two readers share one bounded tokenizer (JSON or Python-literal style, never `eval`):
`read_boxes` for untrusted model output (lenient: malformed items are counted and skipped) and
`parse_truth` for ground truth (strict: any bad item is a `BoxError` naming what is wrong).
Input is clipped to `MAX_CHARS`, nesting to `MAX_DEPTH`, lists to `MAX_BOXES` items and strings to
`MAX_STRING` characters, so a hostile completion costs what those numbers allow, not its length.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

NORMALIZED_MAX = 1000.0
BOX_VERIFIERS = frozenset({"detection", "grounding"})
"""Verifiers whose ground truth is boxes (and so whose frame matters)."""

MAX_CHARS = 200_000
MAX_TRUTH_CHARS = 100_000  # ground truth longer than this is rejected before it is read
MAX_BOXES = 1_000
MAX_DEPTH = 8
MAX_STRING = 512
MAX_STARTS = 8  # how many '[' / '{' positions are tried before giving up


class BoxError(ValueError):
    """Ground-truth boxes that cannot be used: unparsable, NaN, inverted or out of range."""


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    label: str | None = None

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy, self.label)


# ---- frames ---------------------------------------------------------------------------------


def to_pixels(boxes: Sequence[Box], image_size: tuple[int, int]) -> list[Box]:
    """0-1000 boxes -> absolute pixels of an image of (height, width) `image_size`."""
    height, width = image_size
    return [b.scaled(width / NORMALIZED_MAX, height / NORMALIZED_MAX) for b in boxes]


def to_normalized(boxes: Sequence[Box], image_size: tuple[int, int]) -> list[Box]:
    """Pixel boxes of an image of (height, width) -> the 0-1000 frame, as floats (no truncation)."""
    height, width = image_size
    return [b.scaled(NORMALIZED_MAX / width, NORMALIZED_MAX / height) for b in boxes]


def rescale(boxes: Sequence[Box], src: tuple[int, int], dst: tuple[int, int]) -> list[Box]:
    """Absolute pixels of an image of (h, w) `src` -> the same boxes after resizing it to `dst`."""
    return [b.scaled(dst[1] / src[1], dst[0] / src[0]) for b in boxes]


def smart_resize(
    height: int, width: int, *, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
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


def check_box(box: Box, *, normalized: bool, size: tuple[int, int] | None = None) -> None:
    """Raise BoxError for NaN/inf, inverted or empty boxes, or coordinates outside the frame."""
    coords = list(box.xyxy)
    if not all(math.isfinite(c) for c in coords):
        raise BoxError(f"box has a non-finite coordinate: {coords}")
    if box.x2 <= box.x1 or box.y2 <= box.y1:
        raise BoxError(f"box is inverted or empty (need x1 < x2 and y1 < y2): {coords}")
    if min(coords) < 0:
        raise BoxError(f"box has a negative coordinate: {coords}")
    if normalized and max(coords) > NORMALIZED_MAX:
        raise BoxError(f"normalised box must lie in 0..1000, got {coords}")
    if size is not None and not normalized:
        h, w = size
        if box.x2 > w + 0.5 or box.y2 > h + 0.5:
            raise BoxError(f"box {coords} exceeds the image (height {h}, width {w})")


# ---- the bounded tokenizer --------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>[-+]?(?:\d{1,40}(?:\.\d{0,40})?|\.\d{1,40})(?:[eE][-+]?\d{1,4})?)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<punct>[\[\]{}(),:])
    | (?P<word>[A-Za-z_]{1,16})
    )""",
    re.VERBOSE | re.DOTALL,
)
_WORDS = {"true": True, "false": False, "null": None, "none": None}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/"}
_TAGGED = re.compile(r"^\s*<answer>(.*)</answer>\s*$", re.S)


class _Stop(Exception):
    """End of input or a syntax error: the caller keeps what was complete."""


class _Overflow(Exception):
    """More items than MAX_BOXES: the caller keeps the first MAX_BOXES."""


class _Parser:
    def __init__(self, text: str, pos: int) -> None:
        self.text, self.pos = text, pos

    def _next(self) -> tuple[str, str]:
        m = _TOKEN.match(self.text, self.pos)
        if m is None or m.end() == self.pos:
            raise _Stop
        self.pos = m.end()
        kind = m.lastgroup or ""
        return kind, m.group(kind)

    def _peek(self) -> tuple[str, str]:
        saved = self.pos
        try:
            return self._next()
        finally:
            self.pos = saved

    def _next_or_end(self) -> tuple[str, str]:
        try:
            return self._next()
        except _Stop:
            return "", ""

    def value(self, depth: int = 0, top: bool = False) -> Any:
        if depth > MAX_DEPTH:
            raise _Stop
        kind, tok = self._next()
        if kind == "num":
            return float(tok)
        if kind == "str":
            return _unquote(tok)
        if kind == "word":
            return _WORDS.get(tok.lower(), math.nan)  # NaN / Infinity / junk words become NaN
        if tok in "[(":
            return self._sequence(depth, top)
        if tok == "{":
            return self._mapping(depth)
        raise _Stop

    def _sequence(self, depth: int, top: bool) -> list[Any]:
        """Items up to the closing bracket; at the top level a broken or cut list keeps its complete items."""
        items: list[Any] = []
        while True:
            kind, tok = self._peek()
            if kind == "punct" and tok in "])":
                self._next()
                return items
            try:
                items.append(self.value(depth + 1))
            except _Stop:
                if top:
                    return items
                raise
            if top and len(items) >= MAX_BOXES:
                raise _Overflow(items)
            kind, tok = self._next_or_end() if top else self._next()
            if kind == "punct" and tok == ",":
                continue
            if (kind == "punct" and tok in "])") or top:
                return items
            raise _Stop

    def _mapping(self, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            kind, tok = self._next()
            if kind == "punct" and tok == "}":
                return out
            if kind not in ("str", "word"):
                raise _Stop
            key = _unquote(tok) if kind == "str" else tok
            if self._next()[1] != ":":
                raise _Stop
            out[key.lower()] = self.value(depth + 1)
            tok = self._next()[1]
            if tok == "}":
                return out
            if tok != ",":
                raise _Stop


def _unquote(tok: str) -> str:
    body = tok[1:-1][: MAX_STRING * 2]
    if "\\" not in body:
        return body[:MAX_STRING]
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)[:MAX_STRING]


def parse_value(text: str) -> Any:
    """The first non-empty list or dict literal in `text` (bounded); None if there is none."""
    text = text[:MAX_CHARS]
    pos = 0
    for _ in range(MAX_STARTS):
        starts = [i for i in (text.find("[", pos), text.find("{", pos)) if i >= 0]
        if not starts:
            return None
        start = min(starts)
        try:
            value = _Parser(text, start).value(top=True)
        except _Overflow as over:
            return over.args[0]
        except _Stop:
            value = None
        if value:
            return value
        pos = start + 1
    return None


def _is_bare(value: Any) -> bool:
    """A single `[x1, y1, x2, y2]`-like list of scalars rather than a list of boxes."""
    return isinstance(value, list) and not any(isinstance(v, (list, dict)) for v in value)


def _items(value: Any, single: bool) -> list[Any]:
    """The box items of a parsed literal: the value itself when it is one box (`single`), else its entries."""
    if isinstance(value, dict) or single:
        return [value]
    return value[:MAX_BOXES] if isinstance(value, list) else []


def _coords_and_label(item: Any) -> tuple[Any, str | None]:
    if isinstance(item, dict):
        label = item.get("label")
        return item.get("bbox_2d", item.get("bbox")), label if isinstance(label, str) else None
    return item, None


def _finite(v: Any) -> bool:
    """A usable coordinate: the tokenizer makes every number a float (and True/False stay bools)."""
    return isinstance(v, float) and math.isfinite(v)


# ---- readers ----------------------------------------------------------------------------------


def read_boxes(text: str) -> tuple[list[Box], int]:
    """(boxes, skipped) from the first box-list literal in untrusted `text`; skipped counts malformed items."""
    value = parse_value(text)
    if value is None:
        return [], 0
    one_box = isinstance(value, list) and len(value) == 4 and all(isinstance(v, float) for v in value)
    boxes, skipped = [], 0
    for item in _items(value, one_box):
        coords, label = _coords_and_label(item)
        if isinstance(coords, list) and len(coords) == 4 and all(_finite(c) for c in coords):
            boxes.append(Box(*coords, label=label))
        else:
            skipped += 1
    return boxes, skipped


@dataclass(frozen=True)
class BoxAnswer:
    """Parsed box ground truth plus how it was written, so re-serialising keeps the style."""

    boxes: list[Box]
    bare: bool  # a single `[x1, y1, x2, y2]` instead of `[{'bbox_2d': ..., 'label': ...}]`
    tagged: bool  # wrapped in <answer>...</answer>


def parse_truth(
    text: str, *, normalized: bool, size: tuple[int, int] | None = None, allow_empty: bool = False
) -> BoxAnswer:
    """Ground truth `[{'bbox_2d': [...], 'label': ...}, ...]` or a bare `[x1, y1, x2, y2]`, tags optional.

    Strict: every item must be a valid box in its frame (`check_box`); `[]` only with `allow_empty`.
    """
    if not isinstance(text, str) or len(text) > MAX_TRUTH_CHARS:
        raise BoxError(f"box ground truth must be a string under {MAX_TRUTH_CHARS} characters")
    tagged = _TAGGED.match(text)
    body = tagged.group(1) if tagged else text
    if allow_empty and "".join(body.split()) == "[]":
        return BoxAnswer([], bare=False, tagged=bool(tagged))
    value = parse_value(body)
    if value is None:
        raise BoxError(f"ground truth has no parseable box: {body.strip()[:200]!r}")
    boxes, bare = [], _is_bare(value)
    for item in _items(value, bare):
        coords, label = _coords_and_label(item)
        if not isinstance(coords, list):
            raise BoxError(f"object without 'bbox_2d': {str(item)[:80]}")
        if len(coords) != 4:
            raise BoxError(f"a box has 4 coordinates [x1, y1, x2, y2], got {len(coords)}: {coords}")
        if not all(isinstance(c, float) for c in coords):  # strings, bools, None
            raise BoxError(f"box coordinates must be 4 numbers, got {coords}")
        box = Box(*coords, label=label)
        check_box(box, normalized=normalized, size=size)
        boxes.append(box)
    return BoxAnswer(boxes, bare=bare, tagged=bool(tagged))


def _num(v: float) -> str:
    r = round(v, 2)
    return str(int(r)) if r == int(r) else str(r)


def format_boxes(
    boxes: Sequence[Box], *, bare: bool = False, tagged: bool = False, as_int: bool = False
) -> str:
    """Serialise in Orsta's style: `[{'bbox_2d': [x1, y1, x2, y2], 'label': 'dog'}]`."""

    def coords(b: Box) -> str:
        return "[" + ", ".join(str(int(round(v))) if as_int else _num(v) for v in b.xyxy) + "]"

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


# ---- the box part of a reward spec --------------------------------------------------------------


def box_verifiers() -> frozenset[str]:
    """Verifiers whose ground truth is boxes (and so whose frame matters)."""
    return BOX_VERIFIERS


def verifier_parm(reward_model: Mapping[str, Any]) -> dict[str, Any]:
    """`verifier_parm` as a new dict: Orsta sometimes stores a JSON string; None, '' and 'null' mean {}."""
    raw = reward_model.get("verifier_parm")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else None
        except ValueError as err:
            raise ValueError(f"verifier_parm is a string but not JSON: {raw[:80]!r}") from err
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"verifier_parm must be a dict, JSON string or null, got {type(raw).__name__}")
    return dict(raw)


def is_normalized(parm: Mapping[str, Any]) -> bool:
    """Ground truth in 0-1000: `normalized` (ours) or `det_verifier_normalized` (Orsta's released key)."""
    return bool(parm.get("normalized", parm.get("det_verifier_normalized", False)))


@dataclass(frozen=True)
class BoxSpec:
    """A box sample's spec read once: its `verifier_parm`, frame and ground truth."""

    parm: dict[str, Any]
    normalized: bool
    truth: BoxAnswer

    @property
    def boxes(self) -> list[Box]:
        return self.truth.boxes

    def require_size(self, image_size: tuple[int, int] | None) -> None:
        """A normalised (0-1000) spec meets pixels only through the image size: BoxError without it,
        rather than a silent near-zero IoU."""
        if self.normalized and image_size is None:
            raise BoxError("ground truth is in the 0-1000 frame (normalized) but no image_size was given")

    def truth_in_pixels(self, image_size: tuple[int, int] | None) -> list[Box]:
        """Ground truth in pixels of the image as the model saw it, (height, width) `image_size`."""
        self.require_size(image_size)
        return to_pixels(self.boxes, image_size) if self.normalized else list(self.boxes)  # type: ignore[arg-type]

    def in_truth_frame(self, pixel_boxes: Sequence[Box], image_size: tuple[int, int] | None) -> list[Box]:
        """Predicted boxes (pixels of the image as the model saw it) in the ground truth's frame."""
        self.require_size(image_size)
        return to_normalized(pixel_boxes, image_size) if self.normalized else list(pixel_boxes)  # type: ignore[arg-type]


@lru_cache(maxsize=256)
def _shared_truth(text: str, normalized: bool, size: tuple[int, int] | None, allow_empty: bool) -> BoxAnswer:
    """`parse_truth`, kept per process: the G completions of a group share one ground truth.
    The boxes are a tuple, so no caller can change what the next one reads."""
    parsed = parse_truth(text, normalized=normalized, size=size, allow_empty=allow_empty)
    return BoxAnswer(tuple(parsed.boxes), parsed.bare, parsed.tagged)  # type: ignore[arg-type]


def read_box_spec(
    reward_model: Mapping[str, Any],
    truth: str | None = None,
    *,
    size: tuple[int, int] | None = None,
    allow_empty: bool = False,
    shared: bool = False,
) -> BoxSpec:
    """Read `verifier_parm` and parse the ground truth (`truth`, else `reward_model["ground_truth"]`).

    `shared=True` (the verifiers) reuses the parse of an identical ground truth from this process,
    with the boxes as a read-only tuple. Raises ValueError for a bad `verifier_parm`, BoxError (a
    ValueError) for bad boxes.
    """
    parm = verifier_parm(reward_model)
    normalized = is_normalized(parm)
    text = str(reward_model["ground_truth"]) if truth is None else truth
    if shared:
        return BoxSpec(parm, normalized, _shared_truth(text, normalized, size, allow_empty))
    return BoxSpec(
        parm, normalized, parse_truth(text, normalized=normalized, size=size, allow_empty=allow_empty)
    )
