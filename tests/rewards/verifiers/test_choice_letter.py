"""The multiple-choice letter fast path gives math-verify's verdict exactly, or none at all (issue 15, item 3)."""

from __future__ import annotations

import string

import pytest

from lit_triune.rewards.result import Context
from lit_triune.rewards.verifiers.choice_letter import read_letter
from lit_triune.rewards.verifiers.math import MathVerifier, read_gold

CTX = Context(image_size=None, iou_threshold=None, compat=None)
FAST = MathVerifier()
SLOW = MathVerifier()
SLOW.fast_path = False

GOLD_FORMS = ["{}", "${}$", "\\boxed{{{}}}", " {} "]
ANSWER_LAYOUTS = ["<answer>\\boxed{{{}}}</answer>", "<answer>{}</answer>", "<answer>${}$</answer>",
                  "<think>So.</think> so \\boxed{{{}}}", "<answer> \\boxed{{ {} }} </answer>",
                  "<answer>The answer is {}</answer>"]  # fmt: skip
NOT_LETTERS = ["a", "e", "i", "AB", "(A)", "A.", "A)", "\\text{A}", "\\mathrm{A}", "A B", "Ä", "Ａ", "\\alpha", "A1",
               "-A", "A'", "\\boxed{A}\\boxed{B}", "", "$$", "AA"]  # fmt: skip


@pytest.mark.parametrize("text", NOT_LETTERS)
def test_anything_but_one_capital_letter_defers(text):
    assert read_letter(text) is None


def _rm(gold: str) -> dict:
    return {"verifier": "mathverify", "ground_truth": gold}


def test_every_letter_pair_in_every_layout_equals_math_verify():
    """26 x 26 gold/answer letters, gold forms and answer layouts rotating: the fast verdict (and its
    failure kind) is the one the verifier gives with the fast path off, i.e. math-verify's."""
    read_gold.cache_clear()
    checked = 0
    for i, g in enumerate(string.ascii_uppercase):
        for j, a in enumerate(string.ascii_uppercase):
            gold = GOLD_FORMS[(i + j) % len(GOLD_FORMS)].format(g)
            response = ANSWER_LAYOUTS[(i * 7 + j) % len(ANSWER_LAYOUTS)].format(a)
            fast, slow = FAST.score(response, _rm(gold), CTX), SLOW.score(response, _rm(gold), CTX)
            assert (fast.accuracy, fast.failure) == (slow.accuracy, slow.failure), (gold, response)
            if "answer is" not in response:  # prose: math-verify reads no answer from it, on either path
                assert fast.accuracy == float(g == a) and fast.failure is None, (gold, response)
            checked += 1
    assert checked == 26 * 26


def test_letter_golds_against_other_answers_fall_through_to_the_same_verdicts():
    """Lower-case letters, numbers, LaTeX and hedges against letter golds: the fast path stays out of the way."""
    read_gold.cache_clear()
    answers = [
        "a",
        "b",
        "e",
        "(A)",
        "\\text{A}",
        "A.",
        "1",
        "0.5",
        "\\sqrt{2}",
        "x",
        "A, B",
        "\\pi",
        "E",
        "I",
    ]
    for g in ["A", "B", "E", "I", "$C$"]:
        for a in answers:
            for layout in ANSWER_LAYOUTS[:3] + ANSWER_LAYOUTS[-1:]:
                response = layout.format(a)
                fast, slow = FAST.score(response, _rm(g), CTX), SLOW.score(response, _rm(g), CTX)
                assert (fast.accuracy, fast.failure) == (slow.accuracy, slow.failure), (g, response)


def test_letter_golds_parse_so_their_lazy_parse_never_turns_into_a_spec_failure():
    read_gold.cache_clear()
    for g in string.ascii_uppercase:
        for form in GOLD_FORMS:
            gold = read_gold(form.format(g))
            assert gold.letter == g and gold.parsed, form.format(g)


def test_letter_pairs_never_reach_math_verify(monkeypatch):
    import math_verify

    def refuse(*args, **kwargs):
        raise AssertionError("math-verify called for a letter answer")

    read_gold.cache_clear()
    monkeypatch.setattr(math_verify, "parse", refuse)
    monkeypatch.setattr(math_verify, "verify", refuse)
    for a, want in [("C", 1.0), ("D", 0.0), ("A", 0.0)]:
        assert FAST.score(f"<answer>\\boxed{{{a}}}</answer>", _rm("C"), CTX).accuracy == want
    assert read_gold("C")._parsed is None
