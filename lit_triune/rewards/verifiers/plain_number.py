"""Plain numbers (integers, decimals, simple fractions) judged without sympy, with math-verify's verdicts.

Most math answers a policy writes are plain numbers, and math-verify spends ~0.1-0.3 ms of LaTeX
parsing and sympy on each. Here a strict regex reads them into exact `Fraction`s instead, and only
where math-verify's verdict is certain is it given without math-verify:

- integers and fractions on both sides: sympy compares `Integer`/`Rational` exactly, so the verdict is
  exact equality (`\\frac{2}{4}` is `1/2`, `-0` is `0`);
- a decimal on either side: math-verify reads it as a sympy `Float` and compares after rounding to 6
  places, so exactly equal values are equal and values further apart than `CLOSE` are not; anything
  in between (`0.333333` against `\\frac{1}{3}`) goes to math-verify.

Everything else -- leading zeros, `+7`, `.5`, `1.`, `1,000`, `1e3`, percentages, units, spaces inside
the number, non-ASCII digits, more digits than the bounds -- is not plain: `read_plain` returns None
and the caller runs math-verify. tests/rewards/verifiers/test_plain_number.py holds the fast verdicts
against math-verify's on a grid of tricky forms. No eval: the regex is the whole grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_INT_DIGITS = 15  # integers and fraction parts; beyond this math-verify decides
MAX_DECIMAL_DIGITS = 12  # significant digits of a decimal: well inside a 53-bit Float
MAX_DECIMAL_MAGNITUDE = 10**9  # |decimal| below this: binary error of its Float stays far below CLOSE
CLOSE = Fraction(1, 10**5)  # decimals closer than this (but unequal) may round together at 6 places

_UINT = rf"(?:0|[1-9][0-9]{{0,{MAX_INT_DIGITS - 1}}})"  # no leading zeros, ASCII digits only
_PINT = rf"[1-9][0-9]{{0,{MAX_INT_DIGITS - 1}}}"  # a denominator: never 0
_PLAIN = re.compile(
    rf"""(?P<neg>-)?(?:
        (?P<int>{_UINT})(?:\.(?P<dec>[0-9]+))?                                     # 42, 2.5
      | \\[dt]?frac\{{(?P<fnum>{_UINT})\}}\{{(?P<fden>{_PINT})\}}                   # \frac{1}{2}
      | (?P<snum>{_UINT})/(?P<sden>{_PINT})                                         # 1/2
    )""",
    re.VERBOSE,
)
_BOXED = re.compile(r"\\boxed\{(.*)\}", re.DOTALL)


@dataclass(frozen=True)
class PlainNumber:
    value: Fraction  # the exact value written
    decimal: bool  # written with a decimal point: a sympy Float to math-verify


def unwrap(text: str) -> str:
    """The inside of at most one `$...$` and then at most one `\\boxed{...}`, stripped."""
    text = text.strip()
    if len(text) >= 2 and text[0] == "$" == text[-1] and "$" not in text[1:-1]:
        text = text[1:-1].strip()
    boxed = _BOXED.fullmatch(text)
    if boxed:
        text = boxed.group(1).strip()
    return text


def read_plain(text: str) -> PlainNumber | None:
    """The plain number `text` is (optionally in `$...$` / `\\boxed{}`), or None: then math-verify decides."""
    if len(text) > 80:
        return None
    m = _PLAIN.fullmatch(unwrap(text))
    if m is None:
        return None
    sign = -1 if m["neg"] else 1
    if m["int"] is not None:
        if m["dec"] is None:
            return PlainNumber(sign * Fraction(int(m["int"])), decimal=False)
        digits = (m["int"] + m["dec"]).lstrip("0")
        value = Fraction(int(m["int"] + m["dec"]), 10 ** len(m["dec"]))
        if len(digits) > MAX_DECIMAL_DIGITS or value >= MAX_DECIMAL_MAGNITUDE:
            return None
        return PlainNumber(sign * value, decimal=True)
    num, den = (m["fnum"], m["fden"]) if m["fnum"] is not None else (m["snum"], m["sden"])
    return PlainNumber(sign * Fraction(int(num), int(den)), decimal=False)


def plain_verdict(gold: PlainNumber, answer: PlainNumber) -> bool | None:
    """math-verify's verdict for two plain numbers, or None where only math-verify can say."""
    if gold.value == answer.value:
        return True
    if not (gold.decimal or answer.decimal):
        return False  # Integer / Rational on both sides: sympy compares exactly
    if gold.decimal and answer.decimal is False and abs(answer.value) >= MAX_DECIMAL_MAGNITUDE:
        return None
    if answer.decimal and gold.decimal is False and abs(gold.value) >= MAX_DECIMAL_MAGNITUDE:
        return None
    if abs(gold.value - answer.value) > CLOSE:
        return False
    return None
