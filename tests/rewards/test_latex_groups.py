"""Bracket-group facts of the LaTeX grammar (`lit_triune/rewards/_latex_groups.py`): a proof that an input cannot
parse is never made for an input LL parses, it is made for the invalid answers that were dear, and math-verify's
outcome on them is the one it had when LL raised the error."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from lit_triune.rewards import _latex_parse, _latex_predict
from lit_triune.rewards._latex_groups import START

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from math_compare import answer  # noqa: E402 - the generator of the symbolic answers in the benchmarks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_latex_predict import SETS, _tree  # noqa: E402

# invalid answers that cost a fresh worker 30-190 ms of SLL and LL prediction before the syntax error
INVALID = [
    "(e^{\\log_{3}(7)})(\\log_{3}(x = 0.5))", "((\\log_{10}(0.5))(7))(\\log_{10}(0.5) = \\frac{0.5}{3})",
    "({{7}^{2}}^{2})(\\ln(\\theta = 10))", "(\\sin(\\ln(\\theta)))(\\tan(3) = 0.5 = 2)", "\\ln(|e|) \\cdot e^{x = 7}",
    "\\tan(\\log_{2}(\\theta) + x = 0.5)", "{e = e + {10}^{-1}}^{-1}", "\\sqrt{2 \\pm 1}", "(x = 2)(3)", "|\\pi = 2|",
    "||x| = 1|", "x =", "((1)", "1)", "3 \\cup 4", "[9966, 6969",
]  # fmt: skip
# valid answers near them: bars, relations beside brackets, sets, eval_at bars
VALID = [
    "|x| = |y|", "|x|^2", "\\int x |_{0}^{1}", "|x||y|", "||x| + 1|", "(x = 1)", "\\{x = 1\\}", "x = (1, 2)", "(1, 2) = x",
    "x \\in [0, 1)", "\\{1 \\pm 2\\}", "(2, 3 \\pm 1)", "{5 \\choose 2}", "x = \\pm 3", "\\sum_{k=1}^{n} k", "a=1,b=2",
    "\\frac{|x|}{2}", "e^{|x|}", "|x|, |y|", "x = |y|",
]  # fmt: skip


def _types(text: str) -> list[int] | None:
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy

    _latex_parse.install()
    parser = _Latex2Sympy.create_parser.__wrapped__(_Latex2Sympy(), text)
    try:
        parser._input.fill()
    except Exception:  # noqa: BLE001 - a lexer error: no tokens to prove anything on
        return None
    return [tok.type for tok in parser._input.tokens]


def _proof(text: str) -> str | None:
    types = _types(text)
    return None if types is None else _latex_predict.predictor().groups.cannot_parse(types)


@pytest.mark.parametrize("text", INVALID)
def test_dear_invalid_answers_are_proved_invalid(text):
    assert _tree(text, "ll") == "error"
    assert _proof(text)


def test_no_proof_for_an_input_ll_parses():
    rng = random.Random(4321)  # a seed no warm-up or benchmark uses
    texts = _latex_parse.shapes()[::7] + SETS + VALID + INVALID + [answer(rng) for _ in range(150)]
    proved = 0
    for text in texts:
        if _proof(text):
            proved += 1
            assert _tree(text, "ll") == "error", text
    assert proved >= len(INVALID)


def test_grammar_facts_hold():
    from latex2sympy2_extended.latex2sympy2 import PSParser

    groups = _latex_predict.predictor().groups
    expr = groups.depth0[PSParser.ruleNames.index("expr")]
    relations = {
        PSParser.ASSIGNMENT,
        PSParser.EQUAL,
        PSParser.LT,
        PSParser.IN,
        PSParser.UNEQUAL,
        PSParser.PLUS_MINUS,
    }
    assert not relations & expr  # an expr holds no relation or \pm outside brackets (`\sum_{k=1}` is inside)
    assert not relations & groups.bar_inside
    assert groups.eval_next == {PSParser.CARET, PSParser.UNDERSCORE}
    after_ln = groups.allowed_after(PSParser.FUNC_LN)[1][PSParser.L_PAREN]
    assert all(PSParser.ASSIGNMENT not in inside for inside, _ in after_ln)  # `\ln(x = 1)`
    at_start = groups.allowed_after(START)[1][PSParser.L_PAREN]
    assert any(PSParser.ASSIGNMENT in inside for inside, _ in at_start)  # `(x = 1)` is a tuple of relations


@pytest.mark.parametrize("text", INVALID[:8])
def test_math_verify_reads_invalid_answers_as_when_ll_raised(text):
    """math-verify catches the parser's error and tries the last equation and its other extractions: the same
    whether the error came from LL or from the proof."""
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    from math_verify import LatexExtractionConfig, parse
    from math_verify.parser import parse_latex_cached

    config = [LatexExtractionConfig(boxed_match_priority=0)]
    _latex_parse.install()
    proved = _Latex2Sympy.create_parser
    parse_latex_cached.cache_clear()
    ours = repr(parse(f"${text}$", extraction_config=config, parsing_timeout=None))
    _Latex2Sympy.create_parser = proved.__wrapped__  # latex2sympy2 as shipped: LL
    try:
        parse_latex_cached.cache_clear()
        shipped = repr(parse(f"${text}$", extraction_config=config, parsing_timeout=None))
    finally:
        _Latex2Sympy.create_parser = proved
        parse_latex_cached.cache_clear()
    assert ours == shipped
