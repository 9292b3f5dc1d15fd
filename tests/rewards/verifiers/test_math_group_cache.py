"""A group's ground truth is read once and its repeated answers judged once, with math-verify's verdicts
(issue 15, item 3): plain golds are never parsed by math-verify unless a completion falls through, and the
verdicts kept on a gold equal fresh math-verify calls on many generated and adversarial cases."""

from __future__ import annotations

import random

import pytest

from lit_triune.rewards.budget import VerifierTimeout
from lit_triune.rewards.result import Context
from lit_triune.rewards.text import AnswerError, clip
from lit_triune.rewards.verifiers import math as mv
from lit_triune.rewards.verifiers.math import MathVerifier, read_answer, read_gold
from lit_triune.rewards.verifiers.plain_number import read_plain

CTX = Context(image_size=None, iou_threshold=None, compat=None)
FAST = MathVerifier()

# adversarial and ordinary forms, used as golds and as answers
FORMS = ["7", "-7", "-0", "+3", "3.", ".5", "0.5", "\\frac{1}{2}", "1/2", "\\dfrac{2}{4}", "0.50", "007", "00",
         "1,000", "1000", "1{,}000", "1\\,000", "1e3", "10^{3}", "1.5e-3", "0.0015", "50\\%", "50%", "0.5\\%",
         "5\\text{ cm}", "5 \\mathrm{cm}", "5", "123456789012345", "1234567890123456", "10000000000000000000001",
         "3.14159", "\\pi", "0.333333", "\\frac{1}{3}", "\\sqrt{2}", "\\frac{\\sqrt{8}}{2}", "1.414214", "2\\sqrt{2}",
         "x+1", "1+x", "x = 3", "3", "(1, 2)", "\\left(1, 2\\right)", "[1, 2]", "(1, 3)", "\\{1, 2\\}", "A", "B",
         "a", "E", "e", "\\text{A}", "(A)", "\\infty", "-\\infty", "\\frac{-1}{2}", "-\\frac{1}{2}", "-0.5",
         "2^{10}", "1024", "45^\\circ", "45", "\\frac{\\pi}{4}", "0.785398"]  # fmt: skip
WRAPS = ["<answer>{}</answer>", "<answer>\\boxed{{{}}}</answer>", "<answer>${}$</answer>",
         "<think>So.</think> so \\boxed{{{}}}", "<answer> \\boxed{{ {} }} </answer>"]  # fmt: skip


def _reference(gold: str, response: str) -> tuple[float, str | None]:
    """math-verify called afresh on what the verifier reads: no fast path, no kept verdicts, no kept gold."""
    from math_verify import parse, verify

    from lit_triune.rewards.verifiers.math_compare import AnswerTooDear, check_answer, limited

    parsed = mv._parse_gold(clip(gold, mv.MAX_ANSWER_CHARS).strip())
    if not parsed:
        return 0.0, "spec"
    try:
        text, config = read_answer(response)
    except AnswerError:
        return 0.0, "parse"
    pred = parse(text, extraction_config=config, parsing_timeout=None)
    if not pred:
        return 0.0, "parse"
    try:
        check_answer(pred)
        with limited():
            return (1.0 if verify(parsed, pred, timeout_seconds=None) else 0.0), None
    except AnswerTooDear:
        return 0.0, "parse"


def _ours(gold: str, response: str) -> tuple[float, str | None]:
    verdict = FAST.score(response, {"verifier": "mathverify", "ground_truth": gold}, CTX)
    return verdict.accuracy, verdict.failure


def test_every_plain_gold_parses_so_its_lazy_parse_never_turns_into_a_spec_failure():
    rng = random.Random(3)
    golds = [f for f in FORMS if read_plain(f) is not None]
    golds += [
        f"{'-' if rng.random() < 0.3 else ''}{rng.randint(0, 10 ** rng.randint(1, 15))}" for _ in range(60)
    ]
    golds += [f"\\boxed{{{rng.randint(1, 999)}/{rng.randint(1, 999)}}}" for _ in range(20)]
    golds += [f"${rng.randint(0, 99999) / 1000:g}$" for _ in range(20)]
    for gold in golds:
        got = read_gold(gold)
        assert got.plain is not None, gold
        assert got.parsed, gold


def test_plain_gold_is_parsed_by_math_verify_only_when_an_answer_falls_through():
    read_gold.cache_clear()
    rm = {"verifier": "mathverify", "ground_truth": "\\frac{3}{4}"}
    for answer in ["0.75", "3/4", "\\frac{6}{8}", "0.7", "-3/4"]:
        FAST.score(f"<answer>\\boxed{{{answer}}}</answer>", rm, CTX)
    assert read_gold("\\frac{3}{4}")._parsed is None
    assert FAST.score("<answer>\\boxed{0.750000001}</answer>", rm, CTX).accuracy == 1.0  # falls through
    assert read_gold("\\frac{3}{4}")._parsed


def test_group_verdicts_equal_fresh_math_verify_on_generated_and_adversarial_pairs():
    """Every gold form against GRPO-like groups of answers with repeats, scored in group order with the
    gold's kept verdicts: each verdict (accuracy and failure kind) equals a fresh math-verify call."""
    rng = random.Random(0)
    read_gold.cache_clear()
    checked = 0
    for gold in FORMS:
        group = [rng.choice(FORMS) for _ in range(6)]
        group += [group[0], gold]  # a repeat and the gold itself
        for answer in group:
            response = rng.choice(WRAPS).format(answer)
            assert _ours(gold, response) == _reference(gold, response), (gold, response)
            checked += 1
    assert checked == 8 * len(FORMS)


def test_a_repeated_answer_is_judged_once():
    read_gold.cache_clear()
    calls = []
    real = mv._judge

    def counting(gold, text, anchored):
        calls.append(text)
        return real(gold, text, anchored)

    mv._judge = counting
    try:
        rm = {"verifier": "mathverify", "ground_truth": "$\\sqrt{2}$"}
        answers = [
            "\\sqrt{2}",
            "\\sqrt{2}",
            "\\frac{\\sqrt{8}}{2}",
            "\\sqrt{2}",
            "2",
            "2",
            "\\sqrt{3}",
            "\\sqrt{2}",
        ]
        got = [FAST.score(f"<answer>\\boxed{{{a}}}</answer>", rm, CTX).accuracy for a in answers]
    finally:
        mv._judge = real
    assert got == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert len(calls) == 4


def test_a_verdict_cut_short_by_the_budget_is_not_kept(monkeypatch):
    read_gold.cache_clear()
    real = mv._judge

    def timing_out(gold, text, anchored):
        raise VerifierTimeout("budget")

    rm = {"verifier": "mathverify", "ground_truth": "$\\sqrt{5}$"}
    response = "<answer>\\boxed{\\sqrt{5}}</answer>"
    monkeypatch.setattr(mv, "_judge", timing_out)
    with pytest.raises(VerifierTimeout):
        FAST.score(response, rm, CTX)
    assert read_gold("$\\sqrt{5}$").verdicts == {}
    monkeypatch.setattr(mv, "_judge", real)
    assert FAST.score(response, rm, CTX).accuracy == 1.0


def test_kept_verdicts_are_bounded_per_gold():
    read_gold.cache_clear()
    rm = {"verifier": "mathverify", "ground_truth": "$x+1$"}
    for k in range(mv.MAX_VERDICTS_PER_GOLD + 20):
        FAST.score(f"<answer>\\boxed{{x+{k}}}</answer>", rm, CTX)
    assert len(read_gold("$x+1$").verdicts) == mv.MAX_VERDICTS_PER_GOLD


ADVERSARIAL = ["1,000", "1000", "1e3", "10^{3}", "0.5", "\\frac{1}{2}", "1/2", ".5", "-0", "0", "+3", "3", "3.", "3.0",
               "007", "7", "123456789012345", "123456789012345678901234567890", "50\\%", "0.5\\%", "50",
               "5\\text{ cm}", "5", "A", "a", "(A)"]  # fmt: skip


def test_every_adversarial_pair_equals_fresh_math_verify():
    """All pairs of the issue's adversarial forms, each as gold and as answer, with the kept verdicts
    and both fast paths on: each verdict equals a fresh math-verify call."""
    read_gold.cache_clear()
    for gold in ADVERSARIAL:
        for answer in ADVERSARIAL:
            response = f"<answer>\\boxed{{{answer}}}</answer>"
            assert _ours(gold, response) == _reference(gold, response), (gold, answer)
