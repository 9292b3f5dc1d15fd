"""Cheap predictions for the LaTeX grammar (`lit_triune/rewards/_latex_predict.py`): the same parse trees as
ANTLR's LL parse wherever the first attempt succeeds, the grammar facts they rest on, and that the nested
answers that were dear now parse on the first attempt."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from lit_triune.rewards import _latex_parse, _latex_predict

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from math_compare import answer  # noqa: E402 - the generator of the symbolic answers in the benchmarks

SETS = [
    "(1, 2)", "(1,2)^2", "{3}", "{1,2}", "[0,1)", "(0,1]^{2}", "\\{1,2\\} \\cup \\{3\\}", "x \\in [0, 1)", "x = 1, y = 2",
    "a=1,2,3", "(x, y) = (1, 2)", "1 \\pm 2", "(1 \\pm 2)", "\\pm 3", "(a)(b)", "{a}^{x}", "{(1,2)}", "((1,2))",
    "\\boxed{1,2}", "[1,2]^T", "(1)", "((3))", "{x \\choose 2}", "{{x} \\choose 2}", "\\sin (x)(y)", "\\sin x (y)",
    "e^{x}", "e^x^2", "e", "x^{e}", "(A \\cup B)", "(1,2) \\cup (3,4)", "\\{x\\}", "|(1,2)|", "(1, 2), (3, 4)",
    "f(x) = 2", "x_{1} = 3", "(x) = 3", "2x=4", "x+1=4", "x^{2}_{1}", "x_{1}^{2}", "x_{1}", "x^{y}_{z} = 2", "|x|+|y|",
    "|x||y|", "a \\cdot b \\cdot c", "a - b - c", "2^{3}^{2}", "x = y = z", "(-\\infty, 1) \\cup (2, \\infty)",
    "{\\ln(10) \\cdot e^{\\frac{1}{2}}}^{x}", "(\\frac{\\log_{3}(7)}{\\log_{2}(e)})(\\ln(e^{2}))", "\\frac{1}{\\sqrt{x^{2}}}",
    "(", "x =", "\\frac{1}{", "(1,", "[0, 1", "{{", "3 + ", "\\sin", "x_", "x^",
]  # fmt: skip


def _tree(text: str, mode: str) -> str:
    """The parse tree in `mode` ('fast': this module's predictions in SLL mode; 'll': latex2sympy2 as shipped),
    or 'error'."""
    from antlr4.atn.PredictionMode import PredictionMode
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy

    _latex_parse.install()
    parser = _Latex2Sympy.create_parser.__wrapped__(_Latex2Sympy(), text)
    try:
        if mode == "fast":
            parser._interp.predictionMode = PredictionMode.SLL
            _latex_predict.install_on(parser)
        return parser.math().toStringTree(recog=parser)
    except Exception:  # noqa: BLE001 - a syntax or lexer error: the outcome compared
        return "error"


def _texts(every: int, generated: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return _latex_parse.shapes()[::every] + SETS + [answer(rng) for _ in range(generated)]


def _check(texts: list[str]) -> tuple[int, int]:
    first = 0
    for text in texts:
        fast = _tree(text, "fast")
        if fast != "error":
            first += 1
            assert fast == _tree(text, "ll"), text
    return first, len(texts)


def test_first_attempt_builds_the_ll_tree_or_fails():
    first, total = _check(_texts(every=80, generated=15, seed=1234))  # generated with a seed no warm-up uses
    assert first > total // 2


@pytest.mark.slow
def test_first_attempt_builds_the_ll_tree_or_fails_on_the_whole_grid():
    first, total = _check(_texts(every=1, generated=400, seed=98765))
    assert first > total // 2


@pytest.mark.parametrize(
    "text",
    ["{\\ln(10) \\cdot e^{\\frac{1}{2}}}^{x}", "(\\frac{\\log_{3}(7)}{\\log_{2}(e)})(\\ln(e^{2}))", "\\frac{1}{\\sqrt{x^{2}}}",
     "|\\tan(x) + \\log_{10}(x)|", "x^{7}", "(1, 2)", "[0, 1)", "x = 3", "(-\\infty, 1) \\cup (2, \\infty)", "a \\cdot b \\cdot c",
     # a wrong guess sent these to the SLL / LL parses (12-50 ms): groups, `^` without `_`, `x = ...`, bars
     "{5 \\choose 2}", "(1 \\pm 2)", "[1 \\pm 2, 3]", "x^2 + 1", "\\sqrt{x^2+1}", "\\theta = \\sin(3) + \\ln(0.5)",
     "|\\ln(y)| + \\log_{10}(e^{2})", "n = |\\ln(7)|", "\\tan(|2| + 1)",
     "x^{2} + 3 = 7", "y^2 - 7y + 12 = 0", "a^2 + b^2 = c^2", "x_1 = 2, x_2 = 3"],
)  # fmt: skip
def test_nested_answers_parse_on_the_first_attempt(text):
    assert _tree(text, "fast") != "error"  # no fallback to the SLL / LL parses that build DFA states


def test_every_rule_is_bracket_balanced():
    """What AFTER_GROUP rests on: on every path through every rule, the opening and closing bracket tokens it
    matches itself pair up (sub-rules are checked on their own), so a derivation that starts with a bracket
    ends at the bracket that closes it."""
    from antlr4.atn.Transition import RuleTransition
    from latex2sympy2_extended.latex2sympy2 import PSParser

    atn = PSParser.atn
    opening = {getattr(PSParser, n) for n in _latex_predict.OPEN}
    closing = {getattr(PSParser, n) for n in _latex_predict.CLOSE}
    for rule, start in enumerate(atn.ruleToStartState):
        depth = {start.stateNumber: 0}
        todo = [start]
        while todo:
            state = todo.pop()
            d = depth[state.stateNumber]
            if state is atn.ruleToStopState[rule]:
                assert d == 0, PSParser.ruleNames[rule]
                continue
            for t in state.transitions:
                nxt, step = (t.followState, 0) if isinstance(t, RuleTransition) else (t.target, 0)
                if not t.isEpsilon and t.label is not None:
                    tokens = set(_latex_predict._values(t.label))
                    if tokens & opening:
                        assert tokens <= opening, PSParser.ruleNames[rule]
                        step = 1
                    elif tokens & closing:
                        assert tokens <= closing, PSParser.ruleNames[rule]
                        step = -1
                assert d + step >= 0, PSParser.ruleNames[rule]
                if nxt.stateNumber in depth:
                    assert depth[nxt.stateNumber] == d + step, PSParser.ruleNames[rule]
                else:
                    depth[nxt.stateNumber] = d + step
                    todo.append(nxt)


def test_grammar_facts_hold():
    from latex2sympy2_extended.latex2sympy2 import PSParser

    predictor = _latex_predict.predictor()  # raises GrammarChanged if a decision is not the one described
    follow = {PSParser.symbolicNames[t] if t >= 0 else "EOF" for t in predictor.after_group[93, 2][1]}
    assert follow == {
        "COMMA",
        "SEMICOLON",
        "R_PAREN",
        "R_PAREN_VISUAL",
        "R_BRACKET",
        "R_BRACE",
        "R_BRACE_VISUAL",
        "EOF",
    }
    atn, names = PSParser.atn, PSParser.ruleNames
    assert _latex_predict.requires_one_of(
        atn, names.index("plus_minus_expr"), frozenset({PSParser.PLUS_MINUS})
    )
    assert not _latex_predict.requires_one_of(atn, names.index("relation"), frozenset({PSParser.PLUS_MINUS}))
    assert PSParser.UNION not in _latex_predict.rule_tokens(atn, names.index("set_elements"))
    assert PSParser.UNION in _latex_predict.rule_tokens(atn, names.index("set_relation"))


def _matches_outside_brackets(rule_name: str, tokens: set[int]) -> bool:
    """Whether the rule can match one of `tokens` outside any bracket it opens (sub-rules invoked outside
    brackets count; every rule is bracket-balanced, test above)."""
    from antlr4.atn.Transition import RuleTransition
    from latex2sympy2_extended.latex2sympy2 import PSParser

    atn, names = PSParser.atn, PSParser.ruleNames
    opening = {getattr(PSParser, n) for n in _latex_predict.OPEN}
    closing = {getattr(PSParser, n) for n in _latex_predict.CLOSE}
    memo: dict[int, bool] = {}

    def visit(rule: int) -> bool:
        if rule in memo:
            return memo[rule]
        memo[rule] = False  # recursion through itself adds nothing new
        start = atn.ruleToStartState[rule]
        depth, todo, found = {start.stateNumber: 0}, [start], False
        while todo and not found:
            state = todo.pop()
            d = depth[state.stateNumber]
            if state is atn.ruleToStopState[rule]:
                continue
            for t in state.transitions:
                step = 0
                if isinstance(t, RuleTransition):
                    found |= d == 0 and visit(t.target.ruleIndex)
                    nxt = t.followState
                else:
                    nxt = t.target
                    if not t.isEpsilon and t.label is not None:
                        label = set(_latex_predict._values(t.label))
                        found |= d == 0 and bool(label & tokens)
                        step = 1 if label & opening else -1 if label & closing else 0
                if nxt.stateNumber not in depth:
                    depth[nxt.stateNumber] = d + step
                    todo.append(nxt)
        memo[rule] = found
        return found

    return visit(names.index(rule_name))


def test_set_elements_relation_holds_one_relation_outside_brackets():
    """What ONE_RELATION rests on: atom_expr_list (IN | ASSIGNMENT) semicolon_elements_no_relation, and neither
    side matches a relation token outside brackets."""
    from latex2sympy2_extended.latex2sympy2 import PSParser

    relations = {getattr(PSParser, n) for n in _latex_predict.ONE_RELATION[0, 1]}
    assert not _matches_outside_brackets("atom_expr_list", relations)
    assert not _matches_outside_brackets("semicolon_elements_no_relation", relations)
    assert _matches_outside_brackets("set_elements_relation", relations)
    assert _matches_outside_brackets("relation", relations)  # the check can see one
