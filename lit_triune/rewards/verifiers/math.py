"""`mathverify`: math-verify parse + verify of the ONE final answer, 0/1.

The answer is the `<answer>` block (exactly one), else the one `\\boxed{}` of the completion, else an
anchored "the final answer is $...$" -- a number in the reasoning is never taken for the answer.
Inside the block exactly one candidate is read: a single `\\boxed{}` or `$...$` segment (with no other
number beside it), or the whole block as one LaTeX expression, or -- for a prose block -- the one
expression math-verify finds in it. Several candidates ("3 or 4", "1 2 3", two boxes) are a `parse`
failure: math-verify alone would read the last of them and pay for a hedge.

Cost is bounded *before* math-verify runs (`math_limits`): its LaTeX parser costs ~0.1 s per bracket
nesting level and sympy evaluates integer powers and factorials eagerly in C, where no signal reaches,
so expressions above the limits are `parse` failures. The comparison is bounded the same way, by
structural limits checked before each dear sympy call (`math_compare`: `simplify`, `doit`, `solve`).
math-verify's own SIGALRM timeouts are off (whole seconds, main thread only, reset by each other); the
caller's budget bounds the call.

The ground truth is read once per process (`read_gold`, cached): the G completions of a group share
it. When gold and answer are both plain numbers, `plain_number` gives math-verify's verdict without
sympy, and `choice_letter` when both are capital letters; whenever they are not certain, math-verify
runs as before, and its verdict on an answer text is kept on the gold for the rest of the group (`judge`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import lit_triune.rewards._mathlog  # noqa: F401
from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import Context, Verdict, failed
from lit_triune.rewards.text import AnswerError, clip, single_answer_block
from lit_triune.rewards.verifiers.choice_letter import read_letter
from lit_triune.rewards.verifiers.math_compare import AnswerTooDear, check_answer, limited
from lit_triune.rewards.verifiers.plain_number import PlainNumber, plain_verdict, read_plain

MAX_ANSWER_CHARS = 10_000  # ground truths are read from their tail beyond this
MAX_MATH_CHARS = 200  # the expression handed to the LaTeX parser
MAX_TOKENS = 50  # numbers, letters (each one a symbol), commands and operators: parse cost grows with them
MAX_SYMBOLS = 12  # single letters outside commands: sympy simplifies products of many symbols slowly
MAX_DEPTH = 3  # bracket nesting ((), [], {}) inside a surrounding \boxed{} / $...$: ~0.1 s CPU per level
MAX_POWER_DEPTH = 2  # e^{-x^2} yes, x^{y^{z}} no
MAX_NUMBER_DIGITS = 40
MAX_MAGNITUDE = 4_000  # estimated decimal digits of the integers the expression evaluates to (int->str caps at 4300)
_BINOMS = ("\\binom", "\\dbinom", "\\tbinom", "\\choose")
# big operators: math-verify would evaluate them (doit, quadrature), an answer that holds one restates a problem
# (math_compare refuses a parsed Sum/Limit/Integral/... too), and a first-seen one inside a function costs the
# parser's DFA 80-180 ms
_BIG_OPERATOR = re.compile(r"\\(?:sum|prod|coprod|lim|liminf|limsup|int|iint|iiint|oint)(?![A-Za-z])")


@lru_cache(maxsize=1)
def _configs() -> tuple[list[Any], list[Any]]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    from lit_triune.rewards._latex_parse import install

    install()  # SLL-first LaTeX parsing: every parse of this process goes through here first
    in_block = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    anchored = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    return in_block, anchored


def _truth(reward_model: Mapping[str, Any]) -> str:
    gt = reward_model.get("ground_truth", reward_model.get("answer"))
    if isinstance(gt, bool) or gt is None or not isinstance(gt, (str, int, float)):
        raise ValueError(f"mathverify ground truth must be a string or number, got {gt!r:.200}")
    return str(gt)


def _digit(ch: str) -> bool:
    return len(ch) == 1 and "0" <= ch <= "9"  # ASCII only: int('²') raises


def math_limits(text: str) -> str | None:
    """Why `text` is too dear to parse (length, nesting, power towers, huge numbers), or None.

    One linear pass. The magnitude estimate adds the digits of every number, `len(base) * exponent`
    for integer powers and `log10(n!)` for factorials: a product never has more digits than that sum.
    """
    if len(text) > MAX_MATH_CHARS:
        return f"answer expression has {len(text)} characters (at most {MAX_MATH_CHARS})"
    tokens = [m.group() for m in _MATH_TOKEN.finditer(text)]
    if len(tokens) > MAX_TOKENS:
        return f"answer expression has {len(tokens)} tokens (at most {MAX_TOKENS})"
    symbols = sum(1 for t in tokens if len(t) == 1 and t.isalpha())
    if symbols > MAX_SYMBOLS:
        return f"answer expression has {symbols} letters outside commands (at most {MAX_SYMBOLS})"
    text = _unwrap(text)
    if _BIG_OPERATOR.search(text):
        return "a sum, product, limit or integral is not an answer (math-verify would evaluate it)"
    if any(cmd in text for cmd in _BINOMS) and re.search(r"\d{4}", text):
        return "binomial coefficient of a number with 4 or more digits"
    stack: list[list[Any]] = []  # [is_exponent, digits inside, base digits (exponent groups)]
    mass, last_group_digits, exponent_next, base_digits = 0.0, 0, False, 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if _digit(ch):
            j = i
            while j < n and _digit(text[j]):
                j += 1
            if j - i > MAX_NUMBER_DIGITS:
                return f"number with {j - i} digits (at most {MAX_NUMBER_DIGITS})"
            mass += j - i
            for frame in stack:
                frame[1] += j - i
            if exponent_next:  # x^7: a one-character exponent
                mass += base_digits * int(text[i])
                exponent_next = False
            i = j
            continue
        if ch in "([{":
            stack.append([exponent_next, 0, base_digits])
            if len(stack) > MAX_DEPTH:
                return f"brackets nested deeper than {MAX_DEPTH}"
            exponent_next = False
        elif ch in ")]}":
            if stack:
                is_exp, digits, base = stack.pop()
                last_group_digits = digits
                if is_exp and base and digits:
                    inner = text[text.rfind("{", 0, i) + 1 : i].strip().lstrip("+-")
                    exponent = int(inner) if inner.isascii() and inner.isdigit() else 10**digits
                    mass += base * exponent
        elif ch == "^":
            powers_above = sum(1 for frame in stack if frame[0])
            if powers_above + 1 > MAX_POWER_DEPTH:
                return f"powers nested deeper than {MAX_POWER_DEPTH}"
            before = text[:i].rstrip()[-1:]
            if powers_above and not before.isalpha():
                return "a power tower with a numeric base"
            if _digit(before):
                k = len(text[:i].rstrip())
                start = k
                while start > 0 and _digit(text[start - 1]):
                    start -= 1
                base_digits = k - start
            elif before in ")]}":
                base_digits = last_group_digits
            else:
                base_digits = 0
            rest = text[i + 1 :].lstrip()
            after = rest[:1]
            if rest.startswith(("\\circ", "\\prime")):
                after = "c"  # 40^\circ: a unit, not a number
            if base_digits and after != "{" and not _digit(after) and not after.isalpha():
                return "the exponent of a number must be a braced group or one character"
            exponent_next = True
            i += 1
            continue
        elif ch == "!":
            before = text[:i].rstrip()
            if before.endswith("!"):
                return "repeated factorial"
            if _digit(before[-1:]):
                start = len(before)
                while start > 0 and _digit(before[start - 1]):
                    start -= 1
                if len(before) - start > 5:
                    return "factorial of a number with more than 5 digits"
                mass += math.lgamma(int(before[start:]) + 1) / math.log(10)
            elif before[-1:] in ")]}" and last_group_digits:
                if last_group_digits > 3:
                    return "factorial of a bracket with more than 3 digits"
                mass += math.lgamma(10**last_group_digits + 1) / math.log(10)
        elif not ch.isspace():
            exponent_next = False
        if mass > MAX_MAGNITUDE:
            return f"numbers too large (about {mass:.0f} digits; at most {MAX_MAGNITUDE})"
        i += 1
    if mass > MAX_MAGNITUDE:
        return f"numbers too large (about {mass:.0f} digits; at most {MAX_MAGNITUDE})"
    return None


_MATH_TOKEN = re.compile(
    r"\\(?:begin|end|text|mathrm|operatorname)\s*\{[^{}]*\}|\\[A-Za-z]+|\d+(?:\.\d+)?|[A-Za-z]|[^\s\w]"
)


def _unwrap(text: str) -> str:
    """The expression inside one surrounding `\\boxed{...}` and/or `$...$` (they are not nesting levels)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "$":
        text = text.strip("$").strip()
    if text.startswith("\\boxed{") and text.endswith("}"):
        text = text[len("\\boxed{") : -1]
    return text


def _boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start of `\\boxed`, end after its closing brace) for every `\\boxed{...}`; AnswerError if unclosed."""
    spans, pos = [], text.find("\\boxed")
    while pos >= 0:
        j = pos + len("\\boxed")
        while j < len(text) and text[j].isspace():
            j += 1
        if j >= len(text) or text[j] != "{":
            raise AnswerError("\\boxed without a braced argument")
        depth, k = 0, j
        while k < len(text):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            k += 1
            if depth == 0:
                break
        if depth:
            raise AnswerError("unclosed \\boxed{")
        spans.append((pos, k))
        pos = text.find("\\boxed", k)
    return spans


_DOLLAR = re.compile(r"(?<!\\)\$\$?")
_DELIMITED = re.compile(r"(?<!\\)\$\$?(.*?)(?<!\\)\$\$?|\\\((.*?)\\\)|\\\[(.*?)\\\]", re.DOTALL)
_TEXT_CMD = re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname|mbox|begin|end)\s*\{[^{}]*\}")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}")
_PROSE = re.compile(r"[A-Za-z]{2,}")
# numbers side by side are separate candidates, but the LaTeX parser joins them ('1 2' -> 3, '0 \frac{1}{2}'
# -> 1/2 as a mixed number, '\frac{1}{2} 1' -> 1/2 as a product): refused before parsing
# '1\ 2' is '1 2'; so is '3 \ldots 4' (the parser drops an ellipsis between numbers: it paid 7 against 7)
_LATEX_SPACE = re.compile(r"\\[ ,;:!>]|\\q?quad\b|\\(?:h|)space\s*\{[^{}]*\}|~|\\[lcvd]?dots[cbmio]?(?![A-Za-z])")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_PROSE_GAP = re.compile(r"[\d})\]][\s,;:]*\s[\s,;:]*[-+]?(?:\d|\\)")
_JUXTAPOSED = re.compile(r"[\d})\]]\s+(?:\d|\\[dt]?frac\s*\{\s*\d+\s*\}\s*\{\s*\d+\s*\})")
# a line break, an alignment tab or a logical or/and between two answers: math-verify reads one side of
# '3 \\ 4', '3 & 4', '3 \lor 4' (and of cases/aligned/... rows) and pays it; only in a matrix are they structure
_SEPARATOR = re.compile(r"\\\\|(?<!\\)&|\\(?:lor|vee|land|wedge)(?![A-Za-z])")
_MATRIX = re.compile(r"\\begin\s*\{([pbB]?matrix)\}.*?\\end\s*\{\1\}", re.DOTALL)  # math-verify reads a Matrix


def _is_prose(text: str) -> bool:
    """Words outside LaTeX commands and environment names: read it with math-verify's extraction, not as one
    expression."""
    return bool(_PROSE.search(re.sub(r"\\[A-Za-z]+", " ", _TEXT_CMD.sub(" ", text))))


def _candidates(text: str, config: list[Any]) -> list[str]:
    """The places math-verify could read an answer from (its own regexes), overlapping matches merged."""
    from math_verify.parser import get_extraction_regexes

    spans = sorted(
        (m.start(), m.end())
        for patterns, _ in get_extraction_regexes(config)
        for pattern, _ in patterns
        for m in pattern.finditer(text)
    )
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [text[s:e] for s, e in merged]


def _one_candidate(text: str, config: list[Any]) -> str:
    found = _candidates(text, config)
    if not found:
        raise AnswerError("no answer read from the completion")
    if len(found) > 1:
        shown = ", ".join(repr(f.strip()[:30]) for f in found[:3])
        raise AnswerError(f"several candidate answers ({shown}); exactly one is allowed")
    return found[0]


def _outside_has_digits(text: str, spans: list[tuple[int, int]]) -> bool:
    last, rest = 0, []
    for s, e in spans:
        rest.append(text[last:s])
        last = e
    rest.append(text[last:])
    return any(ch.isdigit() for ch in "".join(rest))


def read_block(block: str) -> tuple[str, list[Any]]:
    """(the one expression in an `<answer>` block, extraction config to parse it with); AnswerError if none/several."""
    in_block, anchored = _configs()
    boxes = _boxed_spans(block)
    if len(boxes) > 1:
        raise AnswerError(f"{len(boxes)} \\boxed answers; exactly one is allowed")
    if boxes:
        if _outside_has_digits(block, boxes):
            raise AnswerError("a number beside the \\boxed answer; exactly one answer is allowed")
        s, e = boxes[0]
        return block[s:e], anchored
    segments = list(_DELIMITED.finditer(block))
    if len(segments) > 1 or (not segments and _DOLLAR.search(block)):
        raise AnswerError(f"{max(len(segments), 1)} math segments ($...$) in the answer; exactly one is allowed")
    if segments:
        if _outside_has_digits(block, [segments[0].span()]):
            raise AnswerError("a number beside the $...$ answer; exactly one answer is allowed")
        inner = next(g for g in segments[0].groups() if g is not None)
        if _JUXTAPOSED.search(_LATEX_SPACE.sub(" ", _ENVIRONMENT.sub(r" \\env ", inner))):  # '$3 \cdots 4$' too
            raise AnswerError("numbers side by side ('1 2', '0 \\frac{1}{2}'); exactly one answer is allowed")
        return f"${inner}$", in_block
    if _is_prose(block):
        # math-verify's matches can overlap across candidates ('is 2 or maybe \\frac{1}{3}' is one span),
        # so with the words taken out no two numbers / expressions may stand side by side
        if _PROSE_GAP.search(_LATEX_SPACE.sub(" ", _WORD.sub(" ", block))):
            raise AnswerError("several candidate answers in the prose; exactly one is allowed")
        return _one_candidate(block, in_block), in_block
    if _JUXTAPOSED.search(_LATEX_SPACE.sub(" ", _ENVIRONMENT.sub(r" \\env ", block))):  # not the '} 1' of \begin{pmatrix} 1
        raise AnswerError("numbers side by side ('1 2', '0 \\frac{1}{2}'); exactly one answer is allowed")
    return f"${block}$", in_block


def read_completion(response: str) -> tuple[str, list[Any]]:
    """The one anchored answer of a completion without an `<answer>` block."""
    _, anchored = _configs()
    text = clip(response, MAX_ANSWER_CHARS)
    boxes = _boxed_spans(text)
    if len(boxes) > 1:
        raise AnswerError(f"{len(boxes)} \\boxed answers; exactly one is allowed")
    if boxes:
        s, e = boxes[0]
        return text[s:e], anchored
    return _one_candidate(text, anchored), anchored


def read_answer(response: str) -> tuple[str, list[Any]]:
    """The expression to parse and its config; AnswerError (`parse`) when there is not exactly one
    answer or it is above the cost limits."""
    block = single_answer_block(clip(response))
    text, config = read_block(block) if block is not None else read_completion(response)
    text = unicodedata.normalize("NFKC", text)  # full-width and superscript digits are digits to the limits too
    if _SEPARATOR.search(_MATRIX.sub(" ", text)):
        raise AnswerError("answers separated by a line break, '&' or a logical or/and; exactly one answer is allowed")
    why = math_limits(text)
    if why:
        raise AnswerError(why)
    return text, config


class Gold:
    """A ground truth read once per process and shared by every completion of its group.

    A plain-number or capital-letter gold is read by `read_plain` / `read_letter` alone; math-verify parses
    it only when a completion falls through the fast path (`parsed`, computed at most once). math-verify
    parses every such form (tested: tests/rewards/verifiers/test_math_group_cache.py), so such a gold is
    never a `spec` failure.
    """

    __slots__ = ("truth", "plain", "letter", "_parsed", "verdicts")

    def __init__(
        self,
        truth: str,
        plain: PlainNumber | None,
        letter: str | None = None,
        parsed: list[Any] | None = None,
    ) -> None:
        self.truth = truth  # clipped and stripped
        self.plain = plain  # the plain number it is, for the fast path; None: math-verify decides
        self.letter = letter  # the multiple-choice letter it is (A-Z), for the fast path
        self._parsed = parsed
        # math-verify's verdicts on the answers read so far, by (answer text, anchored config): see `judge`
        self.verdicts: dict[tuple[str, bool], tuple[float, str | None, str | None]] = {}

    @property
    def parsed(self) -> list[Any]:
        """math-verify's parse: [sympy expression, extracted string], or [] if unparseable."""
        if self._parsed is None:
            self._parsed = _parse_gold(self.truth)
        return self._parsed


def _parse_gold(truth: str) -> list[Any]:
    from math_verify import parse

    try:
        text, config = read_block(truth)
        gold = parse(text, extraction_config=config, parsing_timeout=None)
    except AnswerError:
        gold = []
    return gold or parse(truth, parsing_timeout=None)


@lru_cache(maxsize=256)
def read_gold(truth: str) -> Gold:
    """Ground truth parsed like an answer block (so '2^{10}' is 1024, not the 2 an extractor finds first)."""
    truth = clip(truth, MAX_ANSWER_CHARS).strip()
    plain = read_plain(truth)
    letter = read_letter(truth) if plain is None else None
    if plain is not None or letter is not None:
        return Gold(truth, plain, letter)
    return Gold(truth, None, None, _parse_gold(truth))


@register_verifier("mathverify")
class MathVerifier(Verifier):
    fast_path = True  # plain numbers and capital letters judged without sympy (math-verify's verdicts)

    def check(self, reward_model: Mapping[str, Any]) -> None:
        _truth(reward_model)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        try:
            truth = _truth(reward_model)
        except ValueError as err:
            return failed("spec", str(err))
        gold = read_gold(truth)
        if gold.plain is None and gold.letter is None and not gold.parsed:
            return failed("spec", f"ground truth is not parseable by math-verify: {truth[:200]!r}")
        try:
            text, config = read_answer(response)
        except AnswerError as err:
            return Verdict(0.0, failure="parse", detail=str(err))
        if self.fast_path and gold.plain is not None:
            answer = read_plain(text)
            same = plain_verdict(gold.plain, answer) if answer is not None else None
            if same is not None:
                return Verdict(1.0 if same else 0.0)
        if self.fast_path and gold.letter is not None:
            letter = read_letter(text)
            if letter is not None:
                return Verdict(1.0 if letter == gold.letter else 0.0)
        if not gold.parsed:  # not reached: every plain or letter gold parses (tested)
            return failed("spec", f"ground truth is not parseable by math-verify: {truth[:200]!r}")
        accuracy, failure, detail = judge(gold, text, config is _configs()[1])
        return Verdict(accuracy, failure=failure, detail=detail)


MAX_VERDICTS_PER_GOLD = 256


def judge(gold: Gold, text: str, anchored: bool) -> tuple[float, str | None, str | None]:
    """(accuracy, failure, detail): math-verify's verdict on one read answer `text` against `gold`.

    Kept on the gold: the G completions of a GRPO group share it and often write the same answer, and
    math-verify's parse and verify are deterministic, so a repeat costs a lookup and gives the same
    verdict. A call stopped by the time budget raises and leaves nothing behind.
    """
    key = (text, anchored)
    hit = gold.verdicts.get(key)
    if hit is None:
        hit = _judge(gold, text, anchored)
        if len(gold.verdicts) < MAX_VERDICTS_PER_GOLD:
            gold.verdicts[key] = hit
    return hit


def _judge(gold: Gold, text: str, anchored: bool) -> tuple[float, str | None, str | None]:
    from math_verify import parse, verify

    pred = parse(text, extraction_config=_configs()[1 if anchored else 0], parsing_timeout=None)
    if not pred:
        return 0.0, "parse", "no answer read from the completion"
    try:
        check_answer(pred)
        with limited():  # the comparison limits of math_compare, checked before each dear sympy call
            same = verify(gold.parsed, pred, timeout_seconds=None)
    except AnswerTooDear as err:
        return 0.0, "parse", str(err.args[0]) if err.args else "answer too dear to compare"
    return (1.0 if same else 0.0), None, None
