"""Reading the answer out of a completion: the one `<answer>` block, and exactly one count in it.

Everything here is linear-time string work on bounded input; no regex can backtrack
catastrophically (no nested quantifiers), so hostile completions cost what their length costs.

A verifier reads exactly one answer. A completion that offers several (two `<answer>` blocks, "3 or
4", "three two") is a `parse` failure, never a chance to be paid for one of its candidates, and a
count is read whole ("nine dozen" is not 21, "one twenty" is not 21): a policy must not be able to
assemble the right answer from pieces.
"""

from __future__ import annotations

import re
import unicodedata

MAX_RESPONSE_CHARS = 200_000  # longer completions are read from their tail (answers come last)
MAX_COUNT_CHARS = 1_000  # a count answer longer than this is not an answer
MAX_COUNT_DIGITS = 18  # a longer digit run is an overflow: `parse`, not a huge int

_OPEN, _CLOSE = "<answer>", "</answer>"


class AnswerError(ValueError):
    """No single well-formed answer could be read; the verifier scores it as failure `parse`."""


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


def single_answer_block(text: str) -> str | None:
    """Content of the only `<answer>` block (a truncated one counts); None when there is none.

    Raises AnswerError when the completion opens more than one block: several blocks are several
    candidate answers, and reading only the last would let a policy hedge at no cost to accuracy.
    """
    n = text.count(_OPEN)
    if n > 1:
        raise AnswerError(f"{n} <answer> blocks; exactly one is allowed")
    return answer_block(text)


_UNITS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
_ALONE = {"zero": 0, "none": 0, "dozen": 12}  # only a whole phrase: "nine dozen" is not a number
_SCALES = ("hundred", "thousand")
_NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TENS) | frozenset(_ALONE) | frozenset(_SCALES)

# one token per match: a digit run with its separators, a word, a hyphen, or any other character
_TOKEN = re.compile(r"(?P<num>\d[\d.,]*)|(?P<word>[a-z]+)|(?P<hyphen>-)|(?P<other>\S)", re.ASCII)
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+", re.ASCII)
_DECIMAL = re.compile(r"\d+\.\d+", re.ASCII)


def _below_hundred(words: list[str], i: int) -> tuple[int, int] | None:
    """(value, next index) of `unit | tens | tens unit` at words[i], or None."""
    if i < len(words) and words[i] in _UNITS:
        return _UNITS[words[i]], i + 1
    if i < len(words) and words[i] in _TENS:
        value = _TENS[words[i]]
        if i + 1 < len(words) and words[i + 1] in _UNITS and _UNITS[words[i + 1]] < 10:
            return value + _UNITS[words[i + 1]], i + 2
        return value, i + 1
    return None


def _below_thousand(words: list[str], i: int) -> tuple[int, int] | None:
    """`[unit1-9 hundred [and]] [below_hundred]`, at least one part."""
    value, start = 0, i
    if i + 1 < len(words) and words[i] in _UNITS and _UNITS[words[i]] < 10 and words[i + 1] == "hundred":
        value, i = _UNITS[words[i]] * 100, i + 2
        if i + 1 < len(words) and words[i] == "and":
            i += 1  # "one hundred and five": `and` must be followed by the rest of the number
    rest = _below_hundred(words, i)
    if rest is not None:
        value, i = value + rest[0], rest[1]
    elif i > start and words[i - 1] == "and":
        return None
    return (value, i) if i > start else None


def phrase_value(words: list[str]) -> int | None:
    """One English number phrase -> its value (0 .. 999,999); None if the words are not exactly one number.

    'twenty one' -> 21, 'one hundred and five' -> 105, 'three thousand two' -> 3002, 'dozen' -> 12;
    'three two', 'one twenty', 'nine dozen', 'hundred hundred' -> None.
    """
    if len(words) == 1 and words[0] in _ALONE:
        return _ALONE[words[0]]
    head = _below_thousand(words, 0)
    if head is None:
        return None
    value, i = head
    if i < len(words) and words[i] == "thousand":
        value, i = value * 1000, i + 1
        if i < len(words) and words[i] == "and":
            i += 1
        if i < len(words):
            tail = _below_thousand(words, i)
            if tail is None:
                return None
            value, i = value + tail[0], tail[1]
    return value if i == len(words) else None


def _digits_value(raw: str) -> int:
    """A digit token as a count; AnswerError for fractions, malformed separators and overflow."""
    token = raw.rstrip(".,")  # sentence punctuation: "There are 3."
    if token.isascii() and token.isdigit():
        digits = token
    elif _THOUSANDS.fullmatch(token):
        digits = token.replace(",", "")
    elif _DECIMAL.fullmatch(token) and set(token.split(".")[1]) == {"0"}:
        digits = token.split(".")[0]  # "3.0"
    else:
        raise AnswerError(f"{raw[:40]!r} is not one whole number (allowed: digits like 21, 1,000 or 3.0)")
    if len(digits.lstrip("0")) > MAX_COUNT_DIGITS:
        raise AnswerError(f"number with {len(digits)} digits is too long (at most {MAX_COUNT_DIGITS})")
    return int(digits)


def read_count(text: str) -> int:
    """The one count in `text`: digits or ONE English number phrase, with any prose around it.

    Raises AnswerError (a `parse` failure) when there is no number, more than one ("3 or 4",
    "3 (three)"), a phrase that is not one number ("three two", "nine dozen"), a fraction, or an
    overflow. A leading minus sign is kept (a negative count is a wrong answer, not a missing one).
    """
    if len(text) > MAX_COUNT_CHARS:
        raise AnswerError(f"answer has {len(text)} characters; a count answer has at most {MAX_COUNT_CHARS}")
    found: list[tuple[str, int]] = []  # (as written, value)
    run: list[str] = []  # words of the number phrase being read
    run_text: list[str] = []
    pending_and = False

    def close_run() -> None:
        nonlocal pending_and
        if run:
            value = phrase_value(run)
            said = " ".join(run_text)
            if value is None:
                raise AnswerError(f"{said[:80]!r} is not one number (allowed: one phrase like 'twenty-one')")
            found.append((said, value))
        run.clear()
        run_text.clear()
        pending_and = False

    prev_end, prev_kind = -1, ""
    for m in _TOKEN.finditer(unicodedata.normalize("NFKC", text).lower()):
        kind, token = m.lastgroup, m.group()
        if kind == "word" and token in _NUMBER_WORDS:
            # a number word continues the phrase being read: only spaces, one hyphen or an "and" after
            # hundred/thousand can stand between two of its words (anything else closed the phrase)
            if pending_and:
                run.append("and")
            pending_and = False
            run.append(token)
            run_text.append(token)
        elif kind == "word" and token == "and" and run and run[-1] in _SCALES:
            pending_and = True  # "one hundred and five"; a dangling "and" just ends the phrase
            kind = "and"
        elif kind == "hyphen" and run:
            pass  # "twenty-one"
        else:
            close_run()
            if kind == "num":
                negative = prev_kind == "hyphen" and prev_end == m.start() - 1 and not run
                value = _digits_value(token)
                found.append((("-" if negative else "") + token, -value if negative else value))
        if len(found) > 1:
            break
        prev_end, prev_kind = m.end() - 1, kind
    if len(found) <= 1:
        close_run()
    if len(found) > 1:
        raise AnswerError(
            f"several numbers ({', '.join(repr(s[:20]) for s, _ in found[:3])}); exactly one is allowed"
        )
    if not found:
        raise AnswerError("no number in the answer")
    return found[0][1]


def parse_count(text: str) -> int | None:
    """`read_count`, with None instead of AnswerError."""
    try:
        return read_count(text)
    except AnswerError:
        return None
