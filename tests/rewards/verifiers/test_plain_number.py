"""The plain-number fast path gives math-verify's verdict exactly, or none at all (issue 15, item 3)."""

from __future__ import annotations

import random

import pytest

from lit_triune.rewards.result import Context
from lit_triune.rewards.verifiers.math import MathVerifier, read_gold
from lit_triune.rewards.verifiers.plain_number import plain_verdict, read_plain

CTX = Context(image_size=None, iou_threshold=None, compat=None)

PLAIN = ["0", "1", "2", "3", "12", "1000", "-1", "-2", "-0", "999999999", "1000000000", "123456789012345",
         "1.0", "1.00", "0.0", "-0.0", "0.5", "0.50", "0.25", "2.5", "2.50", "-2.5", "0.1", "0.10", "0.3",
         "0.333333", "0.3333333", "0.3333", "0.666667", "3.14", "3.14159", "100.5", "0.000001", "0.0000005",
         "0.0000015", "0.1234565", "0.1234575", "0.123457", "999999999.5", "1.23456789012",
         "\\frac{1}{2}", "\\dfrac{1}{2}", "\\tfrac{1}{2}", "\\frac{2}{4}", "1/2", "\\frac{1}{3}", "1/3",
         "\\frac{2}{3}", "\\frac{1}{10}", "\\frac{5}{1}", "\\frac{0}{5}", "3/2", "-3/4", "-\\frac{1}{2}",
         "\\frac{1}{1000000}", "\\frac{1}{2000000}", "\\frac{22}{7}", "\\frac{1}{7}", "0.142857", "-1/2"]  # fmt: skip
NOT_PLAIN = ["01", "00", "+7", "1.", "5.", "0.", ".5", "-.5", "1e3", "1.5e-3", "1,000", "1{,}000", "1\\,000",
             "1 000", "1_000", "50\\%", "50%", "0.5\\%", "- 3", "--5", "-+5", "100000000000000000001",
             "1234567890123456", "0.1234567890123", "1000000000.5", "\\frac{-1}{2}", "\\frac{1}{0}", "1/0",
             "0/0", "1/2/3", "\\frac{1}{2}/3", "2^{10}", "10^{3}", "\\sqrt{4}", "x", "\\pi", "e", "\\infty",
             "(5)", "{5}", "3.0.1", "1..2", "1:2", "\u0663", "\uff15", "5\\text{ cm}", "\\boxed{5}\\boxed{6}",
             "$5$ $6$", "\\frac{1}{2}\\%", "1/2 + 1"]  # fmt: skip
WRAPS = ["<answer>{}</answer>", "<answer>\\boxed{{{}}}</answer>", "<answer>${}$</answer>",
         "<think>So.</think> so \\boxed{{{}}}", "<answer> \\boxed{{ {} }} </answer>"]  # fmt: skip


def _slow() -> MathVerifier:
    verifier = MathVerifier()
    verifier.fast_path = False
    return verifier


FAST, SLOW = MathVerifier(), _slow()


def _both(gold: str, response: str) -> tuple[float, float]:
    rm = {"verifier": "mathverify", "ground_truth": gold}
    return FAST.score(response, rm, CTX).accuracy, SLOW.score(response, rm, CTX).accuracy


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_anything_not_strictly_plain_defers(text):
    assert read_plain(text) is None
    assert read_plain(f"\\boxed{{{text}}}") is None


@pytest.mark.parametrize(
    ("text", "value", "decimal"),
    [("42", 42, False), ("-0", 0, False), ("2.50", 2.5, True), ("\\frac{2}{4}", 0.5, False), ("-3/4", -0.75, False),
     ("$\\boxed{ 7 }$", 7, False), ("\\dfrac{1}{3}", 1 / 3, False), ("-0.0", 0, True)],
)  # fmt: skip
def test_plain_numbers_are_read_exactly(text, value, decimal):
    got = read_plain(text)
    assert got is not None and got.decimal is decimal and float(got.value) == pytest.approx(value)


@pytest.mark.slow
def test_fast_verdicts_equal_math_verify_on_the_grid():
    """Every gold x answer pair of tricky forms, in every answer layout: where the fast path answers,
    its verdict is the verifier's math-verify verdict; and it does answer most plain pairs."""
    rng = random.Random(0)
    answered = total = 0
    for gold in PLAIN + NOT_PLAIN[:12]:
        for answer in PLAIN + NOT_PLAIN:
            response = rng.choice(WRAPS).format(answer)
            gp, ap = read_plain(gold), read_plain(answer)
            fast = plain_verdict(gp, ap) if gp and ap else None
            total += 1
            if fast is None:
                continue
            answered += 1
            got, want = _both(gold, response)
            assert got == want == float(fast), (gold, response, got, want)
    assert answered > 0.6 * len(PLAIN) ** 2, (answered, total)


@pytest.mark.slow
def test_fast_verdicts_equal_plain_math_verify_on_bare_strings():
    """The same verdicts as math-verify called on the bare strings (gold and answer parsed alike)."""
    from math_verify import parse, verify

    for gold in PLAIN:
        for answer in PLAIN:
            fast = plain_verdict(read_plain(gold), read_plain(answer))  # type: ignore[arg-type]
            if fast is not None:
                want = verify(parse(f"${gold}$", parsing_timeout=None), parse(f"${answer}$", parsing_timeout=None),
                              timeout_seconds=None)  # fmt: skip
                assert fast == want, (gold, answer)


def _random_plain(rng: random.Random) -> str:
    kind = rng.randrange(4)
    sign = "-" if rng.random() < 0.2 else ""
    if kind == 0:
        return sign + str(rng.randint(0, 10 ** rng.randint(1, 9)))
    if kind == 1:
        digits = rng.randint(1, 6)
        return f"{sign}{rng.randint(0, 10 ** rng.randint(0, 5))}.{rng.randint(0, 10**digits - 1):0{digits}d}"
    a, b = rng.randint(0, 10 ** rng.randint(1, 4)), rng.randint(1, 10 ** rng.randint(1, 4))
    return sign + (f"\\frac{{{a}}}{{{b}}}" if kind == 2 else f"{a}/{b}")


def test_random_and_near_miss_pairs_agree():
    """Seeded random plain numbers, each against itself rewritten, a near miss and a random other."""
    rng = random.Random(1)
    for _ in range(150):
        gold = _random_plain(rng)
        value = read_plain(gold)
        assert value is not None, gold
        near = f"{float(value.value) + rng.choice([1e-7, 4e-7, 6e-7, 2e-6, 1e-5, 3e-5]):.9f}"
        for answer in (gold, f"{float(value.value):.6f}", near, _random_plain(rng)):
            got, want = _both(gold, f"<answer>\\boxed{{{answer}}}</answer>")
            assert got == want, (gold, answer, got, want)


def test_plain_pairs_never_reach_sympy(monkeypatch):
    import math_verify

    def refuse(*args, **kwargs):
        raise AssertionError("math-verify called for a plain answer")

    read_gold("\\frac{3}{4}")  # gold parsed (cached) before math-verify is refused
    monkeypatch.setattr(math_verify, "parse", refuse)
    monkeypatch.setattr(math_verify, "verify", refuse)
    rm = {"verifier": "mathverify", "ground_truth": "\\frac{3}{4}"}
    for answer, want in [("0.75", 1.0), ("3/4", 1.0), ("\\frac{6}{8}", 1.0), ("0.7", 0.0), ("-3/4", 0.0)]:
        assert FAST.score(f"<answer>\\boxed{{{answer}}}</answer>", rm, CTX).accuracy == want


def test_a_group_parses_its_ground_truth_once():
    read_gold.cache_clear()
    rm = {"verifier": "mathverify", "ground_truth": "\\sqrt{2}"}
    for answer in ["\\sqrt{2}", "1.414", "\\frac{\\sqrt{8}}{2}", "2", "x", "\\sqrt{3}", "1/2", "\\sqrt{2}"]:
        FAST.score(f"<answer>\\boxed{{{answer}}}</answer>", rm, CTX)
    info = read_gold.cache_info()
    assert (info.misses, info.hits) == (1, 7)
