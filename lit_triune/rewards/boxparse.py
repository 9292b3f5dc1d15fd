"""Bounded parser for box lists written by a model: JSON or Python-literal style, never `eval`.

Accepts `[{'bbox_2d': [x1, y1, x2, y2], 'label': 'dog'}, ...]` with single or double quotes,
True/False/None, tuples, trailing commas and a list cut off mid-item (the complete items are kept),
plus a bare `[x1, y1, x2, y2]` or a list of those. Input is clipped to `MAX_CHARS`, nesting to
`MAX_DEPTH`, the list to `MAX_BOXES` items and strings to `MAX_STRING` characters, so the cost of a
hostile completion is bounded by those numbers, not by its length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 200_000
MAX_BOXES = 1_000
MAX_DEPTH = 8
MAX_STRING = 512
MAX_STARTS = 8  # how many '[' / '{' positions are tried before giving up

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


class _Stop(Exception):
    """End of input or a syntax error: the caller keeps what was complete."""


class _Overflow(Exception):
    """More items than MAX_BOXES: the caller keeps the first MAX_BOXES."""


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
            return self._sequence("]" if tok == "[" else ")", depth, top)
        if tok == "{":
            return self._mapping(depth)
        raise _Stop

    def _sequence(self, close: str, depth: int, top: bool) -> list[Any]:
        items: list[Any] = []
        while True:
            kind, tok = self._peek()
            if kind == "punct" and tok in "])":
                self._next()
                return items
            try:
                items.append(self.value(depth + 1))
            except _Stop:
                if top:  # a truncated or broken top-level list keeps its complete items
                    return items
                raise
            if top and len(items) >= MAX_BOXES:
                raise _Overflow(items)
            kind, tok = self._next() if not top else self._safe_next()
            if kind == "punct" and tok == ",":
                continue
            if kind == "punct" and tok in "])":
                return items
            if top:
                return items
            raise _Stop

    def _safe_next(self) -> tuple[str, str]:
        try:
            return self._next()
        except _Stop:
            return "", ""

    def _mapping(self, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            kind, tok = self._next()
            if kind == "punct" and tok == "}":
                return out
            if kind not in ("str", "word"):
                raise _Stop
            key = _unquote(tok) if kind == "str" else tok
            kind, tok = self._next()
            if tok != ":":
                raise _Stop
            out[key.lower()] = self.value(depth + 1)
            kind, tok = self._next()
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
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)[:MAX_STRING]


def parse_value(text: str) -> Any:
    """The first list or dict literal in `text` (bounded); None if there is none."""
    text = text[:MAX_CHARS]
    pos, starts = 0, 0
    while starts < MAX_STARTS:
        candidates = [i for i in (text.find("[", pos), text.find("{", pos)) if i >= 0]
        if not candidates:
            return None
        start = min(candidates)
        starts += 1
        parser = _Parser(text, start)
        try:
            value = parser.value(top=True)
        except _Overflow as over:
            return over.args[0]
        except _Stop:
            value = None
        if value:
            return value
        pos = start + 1
    return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, float) or not math.isfinite(v):
        return None
    return v


def _box_from(item: Any) -> Box | None:
    label = None
    if isinstance(item, dict):
        coords = item.get("bbox_2d", item.get("bbox"))
        raw_label = item.get("label")
        label = raw_label if isinstance(raw_label, str) else None
    else:
        coords = item
    if not isinstance(coords, list) or len(coords) != 4:
        return None
    nums = [_number(c) for c in coords]
    if any(n is None for n in nums):
        return None
    return Box(nums[0], nums[1], nums[2], nums[3], label)  # type: ignore[arg-type]


def parse_boxes(text: str) -> tuple[list[Box], int]:
    """(boxes, skipped): boxes read from the first box-list literal in `text`; skipped counts malformed items."""
    value = parse_value(text)
    if value is None:
        return [], 0
    if isinstance(value, dict) or (
        isinstance(value, list) and len(value) == 4 and all(isinstance(v, float) for v in value)
    ):
        box = _box_from(value)
        return ([box], 0) if box else ([], 1)
    boxes, skipped = [], 0
    for item in value[:MAX_BOXES] if isinstance(value, list) else []:
        box = _box_from(item)
        if box is None:
            skipped += 1
        else:
            boxes.append(box)
    return boxes, skipped
