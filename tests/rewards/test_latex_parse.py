"""SLL-first LaTeX parsing (`lit_triune/rewards/_latex_parse.py`) gives the parses LL gave, and the verdicts
on ellipses between numbers (issue 17 item 5: cheap inputs, dear scores)."""

from __future__ import annotations

import sys

import pytest

from lit_triune.rewards import _latex_parse
from lit_triune.rewards.scoring import score_sample

EXTRA = [
    "3 \\cdots 4", "1, 2, \\ldots, 9", "1 + 2 + \\cdots + 9", "a_1 a_2 \\cdots a_n", "(((2)))", "\\boxed{50^{61}}",
    "\\frac{\\frac{\\frac{1}{2}}{2}}{2}", "\\left(\\left(37\\right)\\right)", "e^{-x^2}", "\\sqrt{\\sqrt{\\sqrt{2}}}",
    "x^{x^{x}}", "2^2^2^2", "3!4!5!", "|||x|||", "\\{\\{2\\}\\}", "\\frac{1}{2}\\frac{1}{2}\\frac{1}{2}",
    "[0, 1)", "(1, 2]", "3 \\cdot 4", "x \\le 5", "\\log_{3}(x+1)", "2\\sqrt{3} - 1", "((", "\\frac{1}{", "3 +",
]  # fmt: skip


def _parse_both(text):
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy, latex2sympy

    def run():
        try:
            return repr(latex2sympy(text))
        except Exception as err:  # noqa: BLE001 - the outcome, error or not, is what is compared
            return f"error {type(err).__name__}"

    _latex_parse.install()
    two_stage = _Latex2Sympy.create_parser
    sll = run()
    _Latex2Sympy.create_parser = two_stage.__wrapped__  # latex2sympy2 as shipped: LL
    try:
        ll = run()
    finally:
        _Latex2Sympy.create_parser = two_stage
    return sll, ll


@pytest.mark.parametrize("text", _latex_parse.shapes()[::60] + EXTRA)
def test_sll_first_parses_as_ll_did(text):
    sll, ll = _parse_both(text)
    assert sll == ll


def test_install_is_idempotent_and_hooks_the_parser_latex2sympy2_uses():
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy

    _latex_parse.install()
    hooked = _Latex2Sympy.create_parser
    _latex_parse.install()
    assert _Latex2Sympy.create_parser is hooked and hasattr(hooked, "__wrapped__")
    parser = _Latex2Sympy().create_parser("(((2)))")
    assert parser._interp.predictionMode.name == "SLL"


def test_warm_up_imports_what_sympy_imports_lazily():
    done, cpu = _latex_parse.warm_up_parser(("7", "x^{2}"))
    assert done >= 1 and all(name in sys.modules for name in _latex_parse.LAZY_IMPORTS)


MATH = {"verifier": "mathverify", "format_ratio": 0.0}


@pytest.mark.parametrize(
    "answer",
    ["3 \\cdots 4", "3 \\ldots 4", "3\\dots4", "3 \\dotsc 4", "\\frac{1}{2} \\cdots 3", "(3) \\ldots 4", "$3 \\cdots 4$", "$1 2$"],
)
def test_numbers_either_side_of_an_ellipsis_are_two_answers(answer):
    for gold in ("7", "12", "34", "3", "4"):
        out = score_sample(f"<answer>{answer}</answer>", {**MATH, "ground_truth": gold}, budget_s=None)
        assert (out["failure"], out["accuracy"]) == ("parse", 0.0), (gold, out)


@pytest.mark.parametrize(
    ("answer", "gold", "paid"),
    [
        ("3 \\cdot 4", "12", 1.0),
        ("(((2)))", "2", 1.0),
        ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}", 1.0),
        ("\\left(\\left(37\\right)\\right)", "37", 1.0),
        ("e^{-x^2}", "e^{-x^{2}}", 1.0),
        ("\\boxed{2^{10}}", "1024", 1.0),
        ("3!", "6", 1.0),
        ("1 + 2 + \\cdots + 9", "45", 0.0),  # read by math-verify, as before: not an answer it sums
    ],
)
def test_legitimate_answers_keep_their_verdicts(answer, gold, paid):
    out = score_sample(f"<answer>{answer}</answer>", {**MATH, "ground_truth": gold}, budget_s=None)
    assert out["failure"] is None and out["accuracy"] == paid, out
