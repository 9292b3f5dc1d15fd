"""Two-stage (SLL first, LL on a syntax error) ANTLR parsing for math-verify's LaTeX parser, and its warm-up.

Why: latex2sympy2 parses in ANTLR's default LL mode. Its grammar has SLL conflicts at every bracket,
`\\frac`, `\\sqrt`, power and `\\cdots`-style position, and ANTLR resolves each by *full-context*
prediction, which it never caches: `(((2)))` costs ~0.15-0.35 s CPU every time, `3 \\cdots 4` ~0.2-0.6 s,
`e^{-x^2}` ~0.7 s (measured in a worker forked from the warmed forkserver; a second identical call is only
fast because math-verify caches the parse of that exact string). In pure SLL mode the same predictions
are cached in ANTLR's DFA, so after a one-time warm-up a fresh shape costs a few ms.

Same parse trees: this is ANTLR's documented two-stage strategy (see the comment "Two-Stage Parsing" in
antlr4/atn/ParserATNSimulator.py): when an SLL parse meets no syntax error its tree is the one LL would
build (both resolve a true ambiguity to the minimum alternative, and an alternative that full context rules
out leads SLL into a syntax error). latex2sympy2's error listener raises on every syntax error (a bail
strategy), and then the input is parsed again in LL mode exactly as before. tests/rewards/test_latex_parse.py
compares the two modes' results on a grid of answers.

Each parse first tries the cheap predictions of `_latex_predict.py` for the grammar's few long-lookahead
decisions (a different tree is impossible: see there). On a syntax error there, an input that
`_latex_groups.py` proves outside the grammar (brackets that do not pair up, a group holding what no group in
that place can hold: `\\log_{3}(x = 0.5)`) raises that error at once, as LL would have after 30-200 ms of
full-context prediction; any other input is parsed SLL-first, then LL, as above.

`warm_up_parser()` runs a grid of LaTeX shapes through the parser once so the DFA holds the decisions most
answers meet; the verifier pool's forkserver calls it, so every worker (and every replacement) starts with it.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

_installed = False
_fast = True


def install(fast: bool = True) -> None:
    """Make latex2sympy2 parse SLL-first (idempotent; the LL retry keeps its old behaviour on errors).

    With `fast`, each parse first tries `_latex_predict`'s cheap predictions for the grammar's long-lookahead
    decisions; any syntax error in that attempt and the input is parsed SLL-first as before."""
    global _installed, _fast
    from lit_triune.rewards import _latex_predict

    _fast = fast
    if fast:
        try:
            _latex_predict.predictor()  # reads the grammar once; refuses a grammar it does not describe
        except _latex_predict.GrammarChanged as err:
            import logging

            logging.getLogger(__name__).warning("LaTeX parsing without cheap predictions: %s", err)
            _fast = False
    if _installed:
        return
    from antlr4.atn.PredictionMode import PredictionMode
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy

    # checked by the test: latex2sympy2's parse() calls create_parser().math()
    create_ll = _Latex2Sympy.create_parser

    def create_sll(self: Any, latex_str: str) -> Any:
        parser = create_ll(self, latex_str)
        parser._interp.predictionMode = PredictionMode.SLL
        return parser

    def create_parser(self: Any, latex_str: str) -> Any:
        parser = create_sll(self, latex_str)
        first_math = parser.math

        def math() -> Any:
            if _fast:
                try:
                    _latex_predict.install_on(parser)
                    return first_math()
                except Exception as err:  # a wrong guess or an invalid input
                    why = cannot_parse(parser)
                    if why:  # not in the grammar: LL would raise a syntax error too, after 30-200 ms
                        raise Exception(f"not in the grammar: {why}") from err  # noqa: TRY002 - latex2sympy2's type
                try:
                    return create_sll(self, latex_str).math()
                except Exception:  # a syntax error in SLL mode: LL decides, as latex2sympy2 always did
                    return create_ll(self, latex_str).math()
            try:
                return first_math()
            except Exception:  # a syntax error in SLL mode: LL decides, as latex2sympy2 always did
                return create_ll(self, latex_str).math()

        parser.math = math
        return parser

    create_parser.__wrapped__ = create_ll  # type: ignore[attr-defined]
    _Latex2Sympy.create_parser = create_parser
    _installed = True


def cannot_parse(parser: Any) -> str | None:
    """Why the grammar cannot parse the input of `parser`, from its tokens (`_latex_groups.Groups.cannot_parse`),
    or None: unproved, or the input was not lexed to the end (a lexer error raises again on the next attempt)."""
    from lit_triune.rewards import _latex_predict

    stream = parser._input
    if not stream.fetchedEOF:
        return None
    return _latex_predict.predictor().groups.cannot_parse([tok.type for tok in stream.tokens])


def shapes() -> list[str]:
    """A grid of LaTeX shapes that exercise the grammar's decisions (the tests compare SLL-first with LL on
    it): atoms in every bracket/command up to depth 3, pairs of them, binary operators and ellipses between
    numbers, and common answer forms."""
    atoms = ["7", "x", "\\pi", "-3", "2.5", "\\frac{1}{2}", "\\sqrt{2}", "x^{2}", "a_{1}", "\\infty"]
    wraps = [("(", ")"), ("[", "]"), ("{", "}"), ("\\{", "\\}"), ("\\left(", "\\right)"), ("\\left[", "\\right]"),
             ("\\sqrt{", "}"), ("\\frac{1}{", "}"), ("\\frac{", "}{2}"), ("2^{", "}"), ("x^{", "}"), ("e^{", "}"),
             ("\\sin(", ")"), ("\\log(", ")"), ("|", "|"), ("\\boxed{", "}"), ("\\text{", "}"), ("\\sqrt[3]{", "}"),
             ("\\binom{5}{", "}"), ("\\overline{", "}"), ("\\dfrac{", "}{3}"), ("x_{", "}")]  # fmt: skip
    out = [o * d + a + c * d for a in atoms[:4] for d in range(1, 4) for o, c in wraps]
    for (o1, c1), (o2, c2) in itertools.product(wraps[:12], repeat=2):
        out += [o1 + o2 + "7" + c2 + c1, o1 + "x" + c1 + "+" + o2 + "7" + c2, o1 + "7" + c1 + o2 + "x" + c2]
    ops = ["+", "-", "\\cdot", "\\times", "/", "=", "<", "\\le", "\\ge", "\\pm", ",", "\\cdots", "\\ldots", "\\dots",
           "\\vdots", "!", "^", "_", "\\div", "\\cup", "\\cap", "\\to", "\\in", " ", "\\quad", "\\approx", "\\neq", "%"]  # fmt: skip
    for op in ops:
        for a, b in [("3", "4"), ("x", "y"), ("\\frac{1}{2}", "3"), ("(1)", "(2)"), ("2^{3}", "\\sqrt{5}")]:
            out += [f"{a} {op} {b}", f"{a}{op}{b}{op}{a}{op}{b}"]
    out += [f"{a}{b}" for a in atoms for b in atoms]  # juxtaposed (implicit products)
    out += ["1, 2, \\ldots, 9", "1 + 2 + \\cdots + 9", "a_1 a_2 \\cdots a_n", "3!4!", "5!", "(2)!", "\\cdots", "e^{-x^2}",
            "2^2^2", "x^{x^{x}}", "x^{y^{z}}", "[0, 1)", "(0, 1]", "\\{1, 2\\}", "x \\in [0, 1)", "(-\\infty, 3]",
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "10^{999}", "500!", "45^\\circ", "\\frac{\\sqrt{3}}{2}",
            "\\dfrac{3}{4}", "3\\%", "\\$5", "1,000", "1{,}000", "\\sqrt{x^2+1}", "\\sin^2 x", "\\ln 2", "\\log_2 8",
            "\\log_{3}(x+1)", "\\tan\\theta", "f(x) = 2x + 1", "x = 3", "y = \\frac{1}{x}", "(1, 2)", "\\emptyset",
            "\\mathbb{R}", "\\lim_{x \\to 0} \\frac{\\sin x}{x}", "\\sum_{k=1}^{n} k^2", "\\int_0^1 x^2 dx",
            "\\frac{\\frac{1}{2}}{3}", "2\\sqrt{3}", "-\\frac{\\pi}{4}", "x^2 - 5x + 6 = 0", "\\frac{a+b}{c-d}",
            "3 \\text{ cm}", "12\\,\\mathrm{m}", "\\mathrm{A}", "\\text{(B)}", "x > 2 \\text{ and } x < 5"]  # fmt: skip
    return out + nested_shapes()


# one construct inside another: SLL looks ahead across a whole bracketed argument, so the DFA path of
# `\log_{2}((3)(3))` is new even when `\log_{2}(x)` and `(3)(3)` were seen (~110 ms CPU in a fresh worker)
_OUTER = ["\\sin(A)", "\\cos A", "\\tan(A)", "\\log_{2}(A)", "\\ln(A)", "\\sqrt{A}", "e^{A}", "{A}^{2}", "{A}^{x}",
          "\\frac{A}{2}", "\\frac{1}{A}", "|A|", "(A)(3)", "(3)(A)", "A \\cdot 2", "2 \\cdot A", "A + 1", "A - x", "A = 2"]  # fmt: skip
_INNER_ATOMS = ["x", "7", "\\theta", "0.5", "\\frac{1}{2}", "\\pi"]


def nested_shapes() -> list[str]:
    """Every construct of `_OUTER` around every atom and around every construct (with an atom inside)."""
    out = [f.replace("A", a) for f in _OUTER for a in _INNER_ATOMS]
    for i, f in enumerate(_OUTER):
        for j, g in enumerate(_OUTER):
            out.append(f.replace("A", g.replace("A", _INNER_ATOMS[(i + j) % len(_INNER_ATOMS)])))
    return out


# sympy modules that simplify()/verify import lazily on first use (sympy.physics.units alone ~0.35 s CPU):
# the first symbolic comparison of a fresh worker paid for them
LAZY_IMPORTS = ("sympy.physics.units", "sympy.combinatorics", "sympy.sets.setexpr")

# The warm-up parses the whole grid of `shapes()` (~1,100 shapes, ~5 s CPU once per forkserver, about half
# of it SLL syntax errors re-parsed in LL mode). A first-seen construct costs a fresh worker 30-120 ms of DFA
# building (`x^{x^{x}}` 86 ms, `b_{2} b_{3} \ldots b_{k}` 117 ms after a 22-shape warm-up); after the grid,
# 10-35 ms. Every 2nd or 4th shape of the grid (2-4 s) left some of them at 45-67 ms.


def warm_up_parser(corpus: tuple[str, ...] | list[str] | None = None) -> tuple[int, float]:
    """Import what sympy imports lazily, then parse `corpus` (default: the grid of `shapes()`; in `$...$`, as
    the verifier hands them over) to fill ANTLR's DFA. A fixed list, no time budget: every forkserver starts
    workers in the same state. Returns (shapes parsed, CPU seconds)."""
    import importlib

    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    start = time.process_time()
    install()
    if _fast:  # the tables `cannot_parse` reads after the token before a bracket (~0.3 s once)
        from latex2sympy2_extended.latex2sympy2 import PSParser

        from lit_triune.rewards import _latex_predict

        _latex_predict.predictor().groups.warm_up(list(range(1, len(PSParser.symbolicNames))))
    for name in LAZY_IMPORTS:
        importlib.import_module(name)
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    corpus = shapes() if corpus is None else corpus
    for shape in corpus:
        try:
            parse(f"${shape}$", extraction_config=config, parsing_timeout=None)
        except Exception:  # noqa: BLE001 - a warm-up must not stop the forkserver
            pass
    return len(corpus), time.process_time() - start
