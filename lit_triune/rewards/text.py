"""Reading the answer out of a completion: `<answer>` blocks, integers and number words.

Everything here is linear-time string work on bounded input; no regex can backtrack
catastrophically (no nested quantifiers), so hostile completions cost what their length costs.
"""

from __future__ import annotations

import re

MAX_RESPONSE_CHARS = 200_000  # longer completions are read from their tail (answers come last)

_OPEN, _CLOSE = "<answer>", "</answer>"


def clip(text: str, limit: int = MAX_RESPONSE_CHARS) -> str:
    """The last `limit` characters: answers live at the end of a completion."""
    return text if len(text) <= limit else text[-limit:]


def answer_block(text: str) -> str | None:
    """Content of the last `<answer>` block, stripped; a block cut off by truncation counts.

    None when there is no `<answer>` tag at all.
    """
    start = text.rfind(_OPEN)
    if start < 0:
        return None
    body = text[start + len(_OPEN) :]
    end = body.find(_CLOSE)
    return (body if end < 0 else body[:end]).strip()


_UNITS = {
    "zero": 0, "none": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "dozen": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_NUMBER = re.compile(r"[-+]?\d{1,18}(?:\.\d{1,18})?")
_WORD = re.compile(r"[a-z]+")


def _is_number_word(word: str) -> bool:
    return word in _UNITS or word in _TENS or word in ("hundred", "thousand")


def _words_to_int(words: list[str]) -> int | None:
    """'twenty one' -> 21, 'three hundred' -> 300; None if the words are not one number."""
    total, current, seen = 0, 0, False
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
        elif word == "and" and seen:
            continue
        else:
            return None
        seen = True
    return total + current if seen else None


def parse_count(text: str, *, last: bool = False) -> int | None:
    """The first (or last) integer in `text`, digits or English number words; None if none."""
    text = text.lower()[:10_000] if not last else text.lower()[-10_000:]
    candidates: list[tuple[int, int]] = []  # (position, value)
    for m in _NUMBER.finditer(text):
        value = float(m.group())
        if value.is_integer():
            candidates.append((m.start(), int(value)))
    tokens = [(m.start(), m.group()) for m in _WORD.finditer(text.replace("-", " "))]
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and (
            _is_number_word(tokens[j][1])
            or (
                tokens[j][1] == "and"  # "one hundred and five"
                and j > i
                and tokens[j - 1][1] in ("hundred", "thousand")
                and j + 1 < len(tokens)
                and _is_number_word(tokens[j + 1][1])
            )
        ):
            j += 1
        if j > i:
            words = [w for _, w in tokens[i:j]]
            if words[0] not in ("hundred", "thousand"):
                value = _words_to_int(words)
                if value is not None:
                    candidates.append((tokens[i][0], value))
            i = j
        else:
            i += 1
    if not candidates:
        return None
    candidates.sort()
    return candidates[-1][1] if last else candidates[0][1]
