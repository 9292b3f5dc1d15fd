"""Cost limits on math-verify's sympy comparison, checked on the parsed answer right before the dear calls.

`math_limits` (verifiers/math.py) bounds what the LaTeX parser is handed. What is left after the parse is
math-verify's `verify`, whose dear steps are sympy's: `simplify(gold - answer)` in `sympy_symbolic_eq`
(0.1-1 s CPU for one trigonometric or logarithmic term: `\\log_{10}(3) \\ln(\\cos 10)` against 7 took 0.65 s,
`3\\tan(x+2)` against `x+1` 0.42 s), `doit()` of an unevaluated limit, sum or product (`\\sum_{k=1}^{n} k^2`
against 1: 0.4 s) and `solve` of an equation. Here each is preceded by a structural check, and an answer
above a limit raises `AnswerTooDear`, which the verifier scores as `parse`. Nothing is timed: what
happens depends only on the two expressions, never on the machine's load.

Before `verify` (`check_answer`):

0. no power or exponential of constants with more than `MAX_VALUE_DIGITS` digits in the answer
   (`e^{10^{40}}`, `\\pi^{10^{40}}`: sympy keeps them symbolic, and evaluating `\\sin` of one -- which
   math-verify does for non-integer golds -- needs that many digits of pi; `math_limits` estimates the
   same from the text where it can see the numbers);
1. no unevaluated limit, sum, product, integral or derivative in the answer: math-verify would evaluate
   it (`doit`, numeric quadrature); such an answer restates a problem, it does not answer it;
7. no logarithm of a constant with a non-real value (`\\ln(\\ln(-3))`, `\\log_{2}(\\log_{2}(\\ln(0.5)))`): sympy's
   `evalf` of it, which math-verify's numeric comparison runs first, builds `Abs` of a complex logarithm
   symbolically (120-150 ms CPU); one logarithm of a negative number (`\\ln(-3)`) is cheap and still compared.

Inside `verify`, before each `simplify(gold - answer)`:

2. a difference that is certainly not zero is *not equal*, without `simplify`: a constant whose value,
   evaluated with sympy's `evalf(strict=True)` to `NUMERIC_DIGITS` correct digits (after `doit()` when an
   unevaluated exact zero such as `\\sin(\\pi)` stops that: 75-135 ms of simplify), is not 0, or an
   expression in assumption-free variables whose value at one exact generic point (`_POINT`) is provably
   not 0. This is math-verify's verdict, not a limit: `simplify` returns an expression with the same
   values wherever the original is defined, and one that is not 0 somewhere is never `is_zero`;
3. otherwise an answer with a variable the ground truth lacks is not compared: such a difference is zero
   only for an identity written to look like the gold (`\\sin^2 y + \\cos^2 y + 6` against 7);
4. otherwise the answer has at most `MAX_NODES` nodes in its sympy tree and at most `MAX_FUNCTIONS`
   function applications (`\\sin`, `\\log`, `e^{x}`, `|x|`, ...), of which at most `MAX_TRIG`
   trigonometric or hyperbolic.

Before each `solve` (math-verify solves both sides when a relational gold meets a relational answer):

5. the answer has no function application, at most `MAX_NODES` nodes and no variable the ground truth lacks
   (a limit, as rule 3: math-verify solves each side for its own variables and compares the solutions key by
   key and value by value, where the extra variable stands in a key or a value the gold's lack; `a^2 + b^2 =
   c^2` against `x = 1` spent 130-300 ms in `solve`);
8. then the shapes of the two relations (`_relations`): where `solve`'s output, and so math-verify's verdict,
   follows from them (polynomials with rational coefficients: an equation against an inequality, one-variable
   lines and quadratics, equations linear with a constant coefficient in some variable), the verdict is given
   without `solve`; other equations in two or more variables and one-variable relations that are not polynomials
   of degree <= `MAX_UNIVARIATE_DEGREE` are refused (their `solve` costs 40-590 ms); two one-variable polynomial
   inequalities of degree <= `MAX_UNIVARIATE_DEGREE` are solved by math-verify (5-20 ms).

In `sympy_compare_sets` (a set, interval or tuple on either side):

6. a finite set (or a single value, which math-verify wraps in one) against a set sympy knows is infinite
   (`is_finite_set is False`: an interval with numeric ends, a union holding one, the reals), or against a
   finite set with more distinct rational numbers than it has elements (`{e^{11y}}` against `{1, 2}`: 73 ms) or
   with an element certainly different (rule 2's test) from every element of the other (at most
   `MAX_APART_PAIRS` pairs evaluated; `{\\ln(\\theta/2), \\sin n}` against `{9, -4, x}`: 60-190 ms),
   skips the `symmetric_difference(...).is_empty` check, which cannot be true for them and cost 30-80 ms CPU
   (`\\sin(\\ln(\\pi))` against `[0, 1)`: sympy decides whether the value lies in the interval); the rest of
   math-verify's function runs as shipped. Like rule 2, this is math-verify's verdict, not a limit.

Below the limits the comparison is math-verify's own code, unchanged, and its verdict is kept:
tests/rewards/test_math_compare.py holds each limit just inside (verdict as math-verify's) and just outside
(`parse`) and compares verdicts with plain math-verify on a grid; benchmarks/math_compare.py does so on
thousands of generated pairs and prints the cost of both.

The hooks replace two module-level functions of `math_verify.grader` (0.9) by wrappers that apply the rules
only while `limited()` is active (the default-mode verifier); `compat="vtriune"` and any other user of
math-verify in the process get math-verify exactly as shipped. A test checks the hooked names are the ones
math-verify calls.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_NODES = 40  # sympy tree nodes of the answer that reaches simplify / solve
MAX_FUNCTIONS = 2  # function applications in it (trigonometric, logarithm, exponential, |x|, ...)
MAX_TRIG = 1  # trigonometric / hyperbolic ones among them (simplify's dearest: trigsimp, fu)
NUMERIC_DIGITS = 30  # digits to which a constant difference is evaluated (strict: all of them correct)
NONZERO_BELOW = 1e-12  # a difference smaller than this is left to simplify (cancellation)
MAX_VALUE_DIGITS = 4_000  # digits of a power of constants after the parse (as math_limits' estimate)


class AnswerTooDear(BaseException):
    """The answer is above a comparison limit: scored `parse`. A BaseException so that math-verify's
    `except Exception` around each comparison cannot turn it into a silent `False`."""


_active: contextvars.ContextVar[bool] = contextvars.ContextVar("math_compare_active", default=False)
_installed = False


@contextmanager
def limited() -> Iterator[None]:
    """Apply the rules to math-verify comparisons made in this block (installs the hooks on first use)."""
    install()
    token = _active.set(True)
    try:
        yield
    finally:
        _active.reset(token)


def _calculus() -> tuple[type, ...]:
    from sympy import Derivative, Integral, Limit, Product, Sum

    return (Limit, Sum, Product, Integral, Derivative)


def _digits(node: Any) -> float:
    """Decimal digits (either way of 1) of a power or exponential whose base and exponent are constants."""
    import math

    from sympy import exp

    if isinstance(node, exp):
        base, power = math.e, node.args[0]
    else:
        base, power = node.args
        base = abs(complex(base.evalf(15)))
    power = complex(power.evalf(15)).real
    if base == 0 or not math.isfinite(base) or not math.isfinite(power):
        return 0.0 if base == 0 else math.inf
    return abs(power * math.log10(base))


def _largest_power(expr: Any) -> float:
    """Digits of the largest power or exponential of constants in `expr` (inner ones first, so each
    evaluation here is of parts already found small)."""
    from sympy import Pow, exp, postorder_traversal

    largest = 0.0
    for node in postorder_traversal(expr):
        if isinstance(node, (Pow, exp)) and not node.free_symbols:
            try:
                digits = _digits(node)
            except Exception:  # noqa: BLE001 - not a number (e.g. a matrix power): no size to bound
                continue
            largest = max(largest, digits)
            if largest > MAX_VALUE_DIGITS:
                break
    return largest


def check_answer(parsed: list[Any]) -> None:
    """Rules 0, 1 and 7 on math-verify's parse of the answer; raises AnswerTooDear."""
    from sympy import Basic
    from sympy.matrices import MatrixBase

    kinds = _calculus()
    for expr in parsed:
        if not isinstance(expr, (Basic, MatrixBase)):
            continue
        if expr.has(*kinds):
            raise AnswerTooDear("an unevaluated limit, sum, product, integral or derivative is not an answer")
        digits = _largest_power(expr)
        if digits > MAX_VALUE_DIGITS:
            raise AnswerTooDear(f"a power of about {digits:.3g} digits (at most {MAX_VALUE_DIGITS})")
        if _log_of_complex(expr):
            raise AnswerTooDear(
                "the logarithm of a non-real number (a logarithm of a negative one's logarithm)"
            )


def _log_of_complex(expr: Any) -> bool:
    """Rule 7: a logarithm of a constant whose value has an imaginary part. Inner logarithms are looked at first,
    so each argument evaluated here holds only logarithms of real numbers (cheap to evaluate)."""
    from sympy import Float, log, postorder_traversal

    for node in postorder_traversal(expr):
        if isinstance(node, log) and not node.free_symbols:
            try:
                imag = node.args[0].evalf(15).as_real_imag()[1]
            except Exception:  # noqa: BLE001 - not a number: nothing to bound
                continue
            if isinstance(imag, Float) and imag != 0:
                return True
    return False


def _size(expr: Any) -> tuple[int, int, int]:
    """(tree nodes, function applications, trigonometric/hyperbolic applications) of a sympy expression."""
    from sympy import Function, preorder_traversal
    from sympy.functions.elementary.hyperbolic import HyperbolicFunction
    from sympy.functions.elementary.trigonometric import InverseTrigonometricFunction, TrigonometricFunction

    nodes = functions = trig = 0
    for node in preorder_traversal(expr):
        nodes += 1
        if isinstance(node, Function):
            functions += 1
            if isinstance(node, (TrigonometricFunction, InverseTrigonometricFunction, HyperbolicFunction)):
                trig += 1
        if nodes > MAX_NODES:  # enough to refuse; don't walk a long tree to the end
            break
    return nodes, functions, trig


def _check_size(expr: Any, where: str, *, functions_allowed: int = MAX_FUNCTIONS) -> None:
    nodes, functions, trig = _size(expr)
    if nodes > MAX_NODES:
        raise AnswerTooDear(f"answer too large to {where} (more than {MAX_NODES} sympy nodes)")
    if functions > functions_allowed:
        raise AnswerTooDear(
            f"answer has {functions} function applications to {where} (at most {functions_allowed})"
        )
    if trig > MAX_TRIG:
        raise AnswerTooDear(
            f"answer has {trig} trigonometric/hyperbolic functions to {where} (at most {MAX_TRIG})"
        )


def _free(expr: Any) -> set[Any]:
    try:
        return set(expr.free_symbols)
    except Exception:  # noqa: BLE001 - not a sympy object: nothing to compare symbolically
        return set()


def _elementary(expr: Any) -> bool:
    """Numbers, constants, variables and elementary functions only: what `evalf` evaluates quickly and exactly."""
    from sympy import Abs, Add, Mul, NumberSymbol, Pow, Symbol, exp, log, preorder_traversal
    from sympy.core.numbers import ImaginaryUnit, Number
    from sympy.functions.elementary.hyperbolic import HyperbolicFunction
    from sympy.functions.elementary.trigonometric import InverseTrigonometricFunction, TrigonometricFunction

    ok = (Number, NumberSymbol, ImaginaryUnit, Symbol, Add, Mul, Pow, exp, log, Abs, TrigonometricFunction,
          InverseTrigonometricFunction, HyperbolicFunction)  # fmt: skip
    return all(isinstance(node, ok) for node in preorder_traversal(expr))


def _NOT_FINITE() -> tuple[Any, ...]:  # noqa: N802 - a constant, built lazily (sympy is imported late)
    from sympy import S

    return (S.NaN, S.ComplexInfinity, S.Infinity, S.NegativeInfinity)


def _generic_point(symbols: set[Any]) -> dict[Any, Any] | None:
    """Exact, unremarkable values for the variables (none of 0, 1, 1/2, ...), or None when a variable carries
    an assumption (integer, positive, ...) under which an identity may hold that fails at these values."""
    from sympy import Rational, Symbol

    ordered = sorted(symbols, key=str)
    if len(ordered) > len(_POINT) or not all(isinstance(s, Symbol) for s in ordered):
        return None
    for s in ordered:
        if any(
            getattr(s, f"is_{k}") is not None for k in ("integer", "rational", "positive", "negative", "zero")
        ):
            return None
    return {s: Rational(*_POINT[i]) for i, s in enumerate(ordered)}


_POINT = (
    (13, 19),
    (29, 23),
    (5, 17),
    (47, 31),
    (11, 37),
    (53, 41),
)  # 0.684, 1.261, 0.294, 1.516, 0.297, 1.293


def certainly_nonzero(diff: Any) -> bool:
    """True when `diff` is provably not 0 (rule 2); False when unsure.

    A constant: its value, evaluated to `NUMERIC_DIGITS` correct digits, is not 0. An expression in
    variables: its value at one exact generic point (`_POINT`) is provably not 0, so it is not identically 0
    -- `simplify` keeps an expression's values wherever it is defined, so it cannot make it 0 either.
    """
    from sympy import Basic, Float

    if not isinstance(diff, Basic) or not _elementary(diff) or diff.has(*_NOT_FINITE()):
        return False
    if diff.free_symbols:
        point = _generic_point(diff.free_symbols)
        if point is None:
            return False
        diff = diff.xreplace(point)
        if not isinstance(diff, Basic) or diff.free_symbols or diff.has(*_NOT_FINITE()):
            return False
        if _largest_power(diff) > MAX_VALUE_DIGITS:  # e^{10^{39} x} at the point: too large to evaluate
            return False
    parts = _strict_parts(diff)
    if (
        parts is None
    ):  # an exact zero inside, unevaluated (`7 - \\sin(\\pi)`): evaluated again, the same value
        try:
            parts = _strict_parts(diff.doit())
        except Exception:  # noqa: BLE001 - simplify decides
            return False
    if parts is None:
        return False
    return (
        bool(parts)
        and all(isinstance(p, Float) for p in parts)
        and any(abs(p) > NONZERO_BELOW for p in parts)
    )


def _strict_parts(value: Any) -> list[Any] | None:
    """The non-zero real and imaginary parts of `value` evaluated to `NUMERIC_DIGITS` correct digits, or None
    when sympy cannot certify them (strict evalf: an exact zero it cannot tell from a tiny number)."""
    try:
        evaluated = value.evalf(NUMERIC_DIGITS, strict=True)  # PrecisionExhausted if any digit is uncertain
        return [p for p in evaluated.as_real_imag() if p != 0]
    except Exception:  # noqa: BLE001 - not evaluable to full precision
        return None


def _symbolic_eq(original: Any) -> Any:
    def sympy_symbolic_eq(a: Any, b: Any) -> bool:  # (gold, answer), as math-verify calls it
        if not _active.get():
            return original(a, b)
        try:
            diff = a - b
        except Exception:  # noqa: BLE001 - math-verify's own call fails the same way and returns False
            return original(a, b)
        if certainly_nonzero(diff):  # rule 2
            return False
        extra = _free(b) - _free(a)  # rule 3
        if extra:
            names = ", ".join(sorted(str(s) for s in extra)[:3])
            raise AnswerTooDear(f"the answer has a variable ({names}) the ground truth does not have")
        _check_size(b, "simplify")  # rule 4
        return original(a, b)

    sympy_symbolic_eq.__wrapped__ = original  # type: ignore[attr-defined]
    return sympy_symbolic_eq


# degree of a one-variable polynomial inequality math-verify may still solve (a cubic equation: 50-375 ms)
MAX_UNIVARIATE_DEGREE = 2


def _polynomial(rel: Any, *, floats: bool = False) -> tuple[list[Any], Any] | None:
    """(variables in `solve`'s order, Poly of lhs - rhs over them) when that difference is a polynomial with
    rational coefficients (also decimal ones with `floats`, for a cost check only); else None. `solve(rel, rel.free_symbols)` tries the variables in sympy's canonical
    order (`ordered`: by name), whatever the set's iteration order (checked under several hash seeds)."""
    from sympy import Poly, ordered
    from sympy.polys.domains import QQ, RR, ZZ

    variables = list(ordered(rel.free_symbols))
    try:
        diff = rel.lhs - rel.rhs
        if not variables or not diff.is_polynomial(*variables):
            return None
        poly = Poly(diff, *variables)
    except Exception:  # noqa: BLE001 - not a polynomial sympy can read: no decision here
        return None
    # decimals (RR) only for the cost check; pi, e (EX): solve's output is not predicted here
    if poly.domain not in ((ZZ, QQ, RR) if floats else (ZZ, QQ)):
        return None
    return variables, poly


def _one_dict(rel: Any) -> tuple[Any, Any] | None:
    """(key, value) of the single dict `solve` returns for a polynomial equation in >= 2 variables that is linear,
    with a constant coefficient, in some variable; None when that is not certain.

    sympy's `_solve` (1.14) for several symbols first tries `solve_linear` on each in order: the first in which the
    equation is linear gives {s: v}; every later one's solution holds s (the equation does), so it is dropped, as
    are the solutions of the variables in which the equation is not linear (they hold s too). A variable of degree
    1 with a coefficient that is not a constant would be solved for too (`solve_linear` accepts it): None."""
    from sympy import Poly, expand

    found = _polynomial(rel)
    if found is None or len(found[0]) < 2:  # noqa: PLR2004
        return None
    variables, poly = found
    for s in variables:
        degree = poly.degree(s)
        if degree == 0:  # the variable cancels: not read here
            return None
        if degree == 1:
            coeff = Poly(poly.as_expr().coeff(s, 1), *variables)
            if not coeff.is_ground:
                return None
    for s in variables:
        if poly.degree(s) == 1:
            c = poly.as_expr().coeff(s, 1)
            return s, expand(-(poly.as_expr() - c * s) / c)
    return None


def _values(rel: Any) -> bool | None:
    """Whether `solve` finds a value of a one-variable polynomial equation of degree 1 or 2 (the parse's variables are
    real: a quadratic with a negative discriminant has none, and `solve` returns []); None when not certain."""
    found = _polynomial(rel)
    if found is None or len(found[0]) != 1:
        return None
    coeffs = found[1].all_coeffs()
    if len(coeffs) == 2:  # noqa: PLR2004 - degree 1
        return True
    if len(coeffs) == 3:  # noqa: PLR2004 - degree 2
        a, b, c = coeffs
        return bool(b * b - 4 * a * c >= 0)
    return None


def _cheap_univariate(rel: Any) -> bool:
    found = _polynomial(rel, floats=True)
    return found is not None and len(found[0]) == 1 and found[1].total_degree() <= MAX_UNIVARIATE_DEGREE


def _relations(gold: Any, pred: Any) -> bool | None:
    """Rule 8: math-verify's `sympy_solve_and_compare` verdict where it is certain from the shapes, a refusal
    (`AnswerTooDear`) where `solve` would be dear, None (math-verify solves, cheaply) otherwise.

    math-verify (0.9) solves `gold` then `pred` for their free symbols (real: latex2sympy's): an equation in one
    variable gives a list of real values, one in several a list of dicts ({symbol: value}) or raises; an inequality
    in several variables raises at once. Two equations are equal when the lists pair up dict by dict (a length
    mismatch or `.items()` of a value raises: False; two empty lists: True); otherwise the two solutions go to
    `sympy_expr_eq`, where a list never equals a relational. So:

    - an inequality in >= 2 variables as the answer: `solve` raises on it -> False (after the gold's solve);
    - one side an equation, the other an inequality: a list against a relational -> False;
    - a gold equation in several variables against an answer in one: dicts against values -> False;
    - two one-variable equations, one of them a polynomial of degree 1 or 2 with a real root: False; both
      quadratics without one: True (two empty lists);
    - two polynomial equations in >= 2 variables, each linear with a constant coefficient in some variable: one dict
      each (`_one_dict`), equal when the keys are and the values are the same polynomial;
    - refused: any other equation in >= 2 variables (a quadratic's `solve` runs `simplify` and `roots` per variable:
      45-340 ms), a one-variable relation that is not a polynomial of degree <= MAX_UNIVARIATE_DEGREE (radicals,
      rational functions, cubics, degree 5: 40-590 ms). Only two one-variable polynomial inequalities of degree
      <= MAX_UNIVARIATE_DEGREE are still solved by math-verify (5-20 ms)."""
    from sympy import Eq, Ge, Gt, Le, Lt, Symbol

    kinds = (Eq, Lt, Le, Gt, Ge)
    if type(gold) not in kinds or type(pred) not in kinds:
        return None
    gold_eq, pred_eq = type(gold) is Eq, type(pred) is Eq
    n_gold, n_pred = len(gold.free_symbols), len(pred.free_symbols)
    if not gold_eq and n_gold >= 2:  # noqa: PLR2004 - solve raises on the gold at once: math-verify's False, cheap
        return None
    if not pred_eq and n_pred >= 2:  # noqa: PLR2004
        return False
    if gold_eq != pred_eq:
        return False
    if not gold_eq:  # two one-variable inequalities (the answer has no variable the gold lacks)
        if _cheap_univariate(gold) and _cheap_univariate(pred):
            return None
        raise AnswerTooDear(
            f"a relation to solve that is not a polynomial of degree <= {MAX_UNIVARIATE_DEGREE} in one variable"
        )
    if n_gold >= 2 and n_pred == 1:  # noqa: PLR2004
        return False
    if n_gold == 1:
        found_gold, found_pred = _values(gold), _values(pred)
        if found_gold or found_pred:
            return False
        if found_gold is False and found_pred is False:
            return True
        if _cheap_univariate(gold) and _cheap_univariate(pred):
            return None
        raise AnswerTooDear(
            f"a relation to solve that is not a polynomial of degree <= {MAX_UNIVARIATE_DEGREE} in one variable"
        )
    one_gold, one_pred = _one_dict(gold), _one_dict(pred)
    if one_gold is None or one_pred is None:
        raise AnswerTooDear(
            "an equation in two or more variables that is not a polynomial with rational coefficients of degree 1, "
            "with a constant coefficient, in some variable (sympy's solve: 45-340 ms)"
        )
    (key_gold, value_gold), (key_pred, value_pred) = one_gold, one_pred
    if key_gold != key_pred:
        return False
    if (value_gold - value_pred).expand() == 0:
        return True
    if isinstance(value_gold, Symbol) or isinstance(value_pred, Symbol):
        import math_verify.grader as grader

        return bool(grader.sympy_compare_symbols(value_gold, value_pred))
    return False


def _solve_and_compare(original: Any) -> Any:
    def sympy_solve_and_compare(gold: Any, pred: Any, *args: Any, **kwargs: Any) -> bool:
        if _active.get():
            _check_size(pred, "solve", functions_allowed=0)
            extra = _free(pred) - _free(gold)
            if extra:  # solved for variables the gold's solutions cannot hold (`a^2 + b^2 = c^2`: 130-300 ms)
                names = ", ".join(sorted(str(s) for s in extra)[:3])
                raise AnswerTooDear(f"the answer has a variable ({names}) the ground truth does not have")
            decided = _relations(gold, pred)  # rule 8
            if decided is not None:
                return decided
        return original(gold, pred, *args, **kwargs)

    sympy_solve_and_compare.__wrapped__ = original  # type: ignore[attr-defined]
    return sympy_solve_and_compare


def _finite_against_infinite(a_set: Any, b_set: Any) -> bool:
    """One side a FiniteSet, the other a Set that sympy knows is infinite (rule 6)."""
    from sympy import FiniteSet, Set

    for finite, other in ((a_set, b_set), (b_set, a_set)):
        if isinstance(finite, FiniteSet) and isinstance(other, Set) and not isinstance(other, FiniteSet):
            try:
                if other.is_finite_set is False:
                    return True
            except Exception:  # noqa: BLE001 - sympy could not tell: math-verify decides as shipped
                return False
    return False


def _fewer_than_distinct(a_set: Any, b_set: Any) -> bool:
    """Two FiniteSets, one with more distinct rational numbers than the other has elements (rule 6): `{1, 2}`
    against `{e^{11 y}}` cannot be equal whatever y is."""
    from sympy import FiniteSet

    if not (isinstance(a_set, FiniteSet) and isinstance(b_set, FiniteSet)):
        return False
    for one, other in ((a_set, b_set), (b_set, a_set)):
        if len({e for e in one.args if getattr(e, "is_Rational", False)}) > len(other.args):
            return True
    return False


MAX_APART_PAIRS = 9  # element pairs rule 6 evaluates to find an element unlike every element of the other set


def _an_element_apart(a_set: Any, b_set: Any) -> bool:
    """Two FiniteSets, an element of one certainly different (rule 2's `certainly_nonzero`) from every element of the
    other (rule 6): `{\\ln(\\theta/2) - \\log_3(1/2 - y), \\sin n \\tan 10y}` against `{9, -4, x}` cannot be equal, so
    sympy's symmetric difference, which spent 60-190 ms trying to match the elements, cannot be empty."""
    from sympy import FiniteSet

    if not (isinstance(a_set, FiniteSet) and isinstance(b_set, FiniteSet)):
        return False
    if len(a_set.args) * len(b_set.args) > MAX_APART_PAIRS:
        return False
    for one, other in ((a_set, b_set), (b_set, a_set)):
        for element in one.args:
            try:
                if all(certainly_nonzero(element - e) for e in other.args):
                    return True
            except Exception:  # noqa: BLE001 - not a difference sympy can form (a relation): try the next element
                continue
    return False


def _compare_sets(original: Any) -> Any:
    def sympy_compare_sets(gold: Any, pred: Any, float_rounding: int, numeric_precision: int) -> bool:
        if not _active.get():
            return original(gold, pred, float_rounding, numeric_precision)
        import math_verify.grader as grader
        from sympy import FiniteSet, Interval, Set, Tuple

        a_set = gold if isinstance(gold, (Set, Tuple)) else FiniteSet(gold)
        b_set = pred if isinstance(pred, (Set, Tuple)) else FiniteSet(pred)
        if _fewer_than_distinct(a_set, b_set) or _an_element_apart(a_set, b_set):
            # math-verify's function (math_verify/grader.py, 0.9) for two finite sets, without the symmetric
            # difference, which cannot be empty here
            if a_set == b_set:
                return True
            return grader.sympy_deep_compare_set_and_tuple(a_set, b_set, float_rounding, numeric_precision)
        if not _finite_against_infinite(a_set, b_set):
            return original(gold, pred, float_rounding, numeric_precision)
        # math-verify's function for this pair, without the symmetric difference, which is never empty here:
        # not both intervals, not both finite sets / tuples
        if a_set == b_set:
            return True
        deep = grader.sympy_deep_compare_set_and_tuple
        if isinstance(a_set, Interval) and isinstance(b_set, FiniteSet) and a_set.is_open and len(b_set) == 2:
            return deep(Tuple(a_set.start, a_set.end), b_set, float_rounding, numeric_precision)
        if isinstance(b_set, Interval) and isinstance(a_set, FiniteSet) and b_set.is_open and len(a_set) == 2:
            return deep(a_set, Tuple(b_set.start, b_set.end), float_rounding, numeric_precision)
        return False

    sympy_compare_sets.__wrapped__ = original  # type: ignore[attr-defined]
    return sympy_compare_sets


HOOKED = ("sympy_symbolic_eq", "sympy_solve_and_compare", "sympy_compare_sets")


def install() -> None:
    """Wrap math-verify's comparison functions (idempotent); inactive outside `limited()`."""
    global _installed
    if _installed:
        return
    import math_verify.grader as grader

    grader.sympy_symbolic_eq = _symbolic_eq(grader.sympy_symbolic_eq)
    grader.sympy_solve_and_compare = _solve_and_compare(grader.sympy_solve_and_compare)
    grader.sympy_compare_sets = _compare_sets(grader.sympy_compare_sets)
    _installed = True
