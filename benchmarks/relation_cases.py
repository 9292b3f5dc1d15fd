"""Generated textbook relations (lines, planes, quadratics, circles, `a^2 + b^2 = c^2`, inequalities) and answers
to them: the same relation rearranged, scaled, with sides swapped, or perturbed, or another relation of its kind.
What reaches math-verify's `sympy_solve_and_compare` (sympy's `solve` of both sides) when a relational gold meets
a relational answer. Used by benchmarks/relation_cost.py, benchmarks/verifier_worst_case.py and
tests/rewards/test_math_compare.py; no sympy here, only text.
"""

from __future__ import annotations

import random
from fractions import Fraction

# families: (variables, monomials a relation of the family may hold)
FAMILIES = {
    "line": (("x", "y"), ("x", "y", "")),
    "plane": (("x", "y", "z"), ("x", "y", "z", "")),
    "abc_linear": (("a", "b", "c"), ("a", "b", "c", "")),
    "linear1": (("x",), ("x", "")),
    "quadratic1": (("x",), ("x^2", "x", "")),
    "cubic1": (("x",), ("x^3", "x^2", "x", "")),
    "parabola": (("x", "y"), ("x^2", "x", "y", "")),
    "circle": (("x", "y"), ("x^2", "y^2", "x", "")),
    "pythagoras": (("a", "b", "c"), ("a^2", "b^2", "c^2")),
}
OPS = {"=": "=", "<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}  # op -> the op with sides swapped
NEGATED = {"=": "=", "<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}  # both sides times a negative number


def _coef(rng: random.Random) -> int:
    return rng.choice([-5, -4, -3, -2, -1, 1, 1, 2, 3, 4, 5, 6, 7])


def _term(c: Fraction, mono: str, first: bool) -> str:
    sign = "-" if c < 0 else ("" if first else "+")
    a = abs(c)
    if mono and a == 1:
        body = mono
    elif a.denominator == 1:
        body = f"{a.numerator}{mono}"
    else:
        body = f"\\frac{{{a.numerator}}}{{{a.denominator}}}{mono}"
    return f"{sign}{body}" if first else f" {sign} {body}"


def _side(terms: list[tuple[Fraction, str]]) -> str:
    terms = [(c, m) for c, m in terms if c != 0]
    if not terms:
        return "0"
    return "".join(_term(c, m, i == 0) for i, (c, m) in enumerate(terms))


def render(
    poly: dict[str, Fraction],
    op: str,
    rng: random.Random,
    *,
    scale: Fraction = Fraction(1),
    swap: bool = False,
    shuffle: bool = True,
) -> str:
    """`poly op 0` written as `lhs op rhs` with a random split of the terms, both sides times `scale`."""
    monos = [m for m, c in poly.items() if c != 0]
    if shuffle:
        rng.shuffle(monos)
    left = [m for m in monos if rng.random() < 0.6] or monos[:1]
    lhs = [(scale * poly[m], m) for m in monos if m in left]
    rhs = [(-scale * poly[m], m) for m in monos if m not in left]
    if scale < 0:
        op = NEGATED[op]
    if swap:
        lhs, rhs, op = rhs, lhs, OPS[op]
    return f"{_side(lhs)} {op} {_side(rhs)}"


def textbook(family: str, poly: dict[str, Fraction], op: str) -> str:
    """The gold's form: `y = ...` for a line or parabola, `a^2 + b^2 = c^2`, else `... = constant`."""
    if family in ("line", "parabola") and poly.get("y") and op == "=":
        k = -poly["y"]
        return f"y = {_side([(c / k, m) for m, c in poly.items() if m != 'y'])}"
    if family == "pythagoras" and op == "=":
        return "a^2 + b^2 = c^2"
    const = poly.get("", Fraction(0))
    return f"{_side([(c, m) for m, c in poly.items() if m])} {op} {_side([(-const, '')])}"


def relation(rng: random.Random) -> tuple[str, dict[str, Fraction], str]:
    family = rng.choice(list(FAMILIES))
    _, monos = FAMILIES[family]
    if family == "pythagoras":
        poly = {"a^2": Fraction(1), "b^2": Fraction(1), "c^2": Fraction(-1)}
    else:
        poly = {m: Fraction(_coef(rng)) for m in monos}
    op = (
        "="
        if family not in ("linear1", "quadratic1", "line") or rng.random() < 0.6
        else rng.choice(["<", ">", "\\le", "\\ge"])
    )
    return family, poly, op


def pair(rng: random.Random) -> tuple[str, str, str]:
    """(gold, answer, how the answer was made)."""
    family, poly, op = relation(rng)
    gold = textbook(family, poly, op)
    how = rng.choice(["same", "rearranged", "scaled", "swapped", "perturbed", "other", "other_family"])
    if how == "same":
        return gold, gold, how
    if how == "rearranged":
        return gold, render(poly, op, rng), how
    if how == "scaled":
        k = Fraction(rng.choice([2, 3, -1, -2]), rng.choice([1, 1, 2]))
        return gold, render(poly, op, rng, scale=k), how
    if how == "swapped":
        return gold, render(poly, op, rng, swap=True), how
    if how == "perturbed":
        other = dict(poly)
        m = rng.choice(list(other))
        other[m] += rng.choice([-1, 1])
        return gold, render(other, op, rng, scale=Fraction(rng.choice([1, 2])), swap=rng.random() < 0.3), how
    if how == "other":
        return (
            gold,
            render({m: Fraction(_coef(rng)) for m in poly}, op if rng.random() < 0.7 else "=", rng),
            how,
        )
    _, poly2, op2 = relation(rng)
    return gold, render(poly2, op2, rng), how


def pairs(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    return [pair(rng) for _ in range(n)]


if __name__ == "__main__":
    for g, a, how in pairs(20):
        print(f"{how:12s} {g!r:40s} {a!r}")
