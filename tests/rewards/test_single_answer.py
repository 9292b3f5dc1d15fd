"""Issue 17, items 5-7: one answer per completion, bounded parse cost, reward specs validated fully."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from lit_triune.rewards import score, validate_reward_model
from lit_triune.rewards.text import AnswerError, read_count
from lit_triune.rewards.verifiers.math import math_limits
from lit_triune.rewards.verifiers.ocr import levenshtein

COUNT = {"verifier": "counting", "ground_truth": 5}
MATH = {"verifier": "mathverify", "ground_truth": "3"}


# ----------------------------------------------------------------------------- counting
@pytest.mark.parametrize(
    ("text", "value"),
    [("5", 5), ("five", 5), ("There are 5 dogs.", 5), ("twenty-one", 21), ("twenty one", 21),
     ("one hundred five", 105), ("one hundred and five", 105), ("three thousand two", 3002),
     ("1,000", 1000), ("3.0", 3), ("a dozen", 12), ("zero", 0), ("５", 5), ("-3", -3)],
)  # fmt: skip
def test_one_well_formed_number_is_read(text, value):
    assert read_count(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [("three two", "not one number"), ("one twenty", "not one number"), ("nine dozen", "not one number"),
     ("eleven hundred", "not one number"), ("hundred", "not one number"), ("3 4", "several numbers"),
     ("3 or 4", "several numbers"), ("3 (three)", "several numbers"), ("two and three", "several numbers"),
     ("5 5", "several numbers"), ("1,2,3", "not one whole number"), ("3.5", "not one whole number"),
     ("9" * 19, "too long"), ("no idea", "no number"), ("one hundred hundred " * 60, "characters")],
)  # fmt: skip
def test_anything_but_one_number_is_a_parse_failure(text, why):
    with pytest.raises(AnswerError, match=why):
        read_count(text)
    out = score(f"<answer>{text}</answer>", COUNT)
    assert out["failure"] == "parse" and out["accuracy"] == 0.0 and why in out["detail"]


def test_counting_is_not_paid_for_pieces_or_hedges():
    for answer in ("three two", "two three", "5 or 4", "4 5", "five (5)", "5, 6"):
        assert score(f"<answer>{answer}</answer>", COUNT)["accuracy"] == 0.0, answer
    assert score("<answer>one twenty</answer>", {"verifier": "counting", "ground_truth": 21})["accuracy"] == 0.0
    assert score("<answer>nine dozen</answer>", {"verifier": "counting", "ground_truth": 108})["accuracy"] == 0.0
    two_blocks = score("<answer>4</answer><answer>5</answer>", COUNT)
    assert two_blocks["failure"] == "parse" and "2 <answer> blocks" in two_blocks["detail"]


def test_counting_overflow_is_parse_not_crash():
    for answer in ("one hundred hundred " * 40, "9" * 5000, "thousand thousand thousand thousand"):
        assert score(f"<answer>{answer}</answer>", COUNT)["failure"] == "parse"


def test_counting_without_block_reads_the_whole_completion():
    assert score("5", COUNT)["accuracy"] == 1.0
    assert score("I see 4 then 5", COUNT)["failure"] == "parse"  # the reasoning's last number is not taken


# ----------------------------------------------------------------------------- math
@pytest.mark.parametrize(
    "answer",
    ["1 2 3", "4 or 3", "3 or 4", "The answer is 3 but maybe 4", "$4$ $3$", "\\boxed{4}\\boxed{3}",
     "x = 4 or x = 3", "\\boxed{3} 4", "$3$ or 4", "0\\ 3", "1 2", "3 3", "\\frac{3}{1} 1"],
)  # fmt: skip
def test_math_multi_candidate_answers_are_parse_failures(answer):
    out = score(f"<answer>{answer}</answer>", MATH)
    assert out["accuracy"] == 0.0 and out["failure"] == "parse", (answer, out["detail"])


@pytest.mark.parametrize(
    "answer",
    ["3 \\cdots 4", "3 \\ldots 4", "3\\dots4", "3 \\dotsc 4", "\\frac{1}{2} \\cdots 3", "(3) \\ldots 4", "$3 \\cdots 4$",
     "$1 2$"],
)  # fmt: skip
def test_math_numbers_either_side_of_an_ellipsis_are_two_answers(answer):
    """The LaTeX parser drops an ellipsis between numbers: '3 \\ldots 4' was paid against a gold of 7."""
    for gold in ("7", "12", "34", "3", "4"):
        out = score(f"<answer>{answer}</answer>", {**MATH, "ground_truth": gold})
        assert (out["failure"], out["accuracy"]) == ("parse", 0.0), (gold, out["detail"])


@pytest.mark.parametrize(
    ("answer", "gold"),
    [("3", "3"), ("\\boxed{3}", "3"), ("$3$", "3"), ("The answer is 3", "3"), ("x = 3", "3"),
     ("\\frac{6}{2}", "3"), ("0.5", "\\boxed{\\frac{1}{2}}"), ("1024", "2^{10}"), ("2^{10}", "1024"),
     ("2 \\sqrt{3}", "2\\sqrt{3}"), ("40^\\circ", "40")],
)  # fmt: skip
def test_math_one_answer_is_still_read(answer, gold):
    assert score(f"<answer>{answer}</answer>", {"verifier": "mathverify", "ground_truth": gold})["accuracy"] == 1.0


@pytest.mark.parametrize(
    "answer",
    ["4 \\\\ 3", "4 & 3", "4 \\lor 3", "4 \\vee 3", "4 \\vee x = 3", "4 \\land 3", "4 \\wedge 3",
     "\\boxed{4 \\\\ 3}", "$4 \\lor 3$", "\\begin{cases} 4 \\\\ 3 \\end{cases}", "\\begin{aligned} 4 & 3 \\end{aligned}",
     "\\begin{vmatrix} 4 \\\\ 3 \\end{vmatrix}"],
)  # fmt: skip
def test_math_answers_split_by_a_line_break_alignment_or_logical_or_are_parse_failures(answer):
    # math-verify reads one side of each ('4 \\ 3' and '4 \lor 3' were paid for 3)
    out = score(f"<answer>{answer}</answer>", MATH)
    assert (out["accuracy"], out["failure"]) == (0.0, "parse"), (answer, out["detail"])


@pytest.mark.parametrize("env", ["matrix", "pmatrix", "bmatrix", "Bmatrix"])
def test_math_line_breaks_and_alignment_inside_a_matrix_are_structure(env):
    # a matrix answer in a block used to be read as prose (the environment name 'pmatrix' was taken for a word)
    matrix = f"\\begin{{{env}}} 1 & 2 \\\\ 3 & 4 \\end{{{env}}}"
    rm = {"verifier": "mathverify", "ground_truth": matrix}
    for answer, paid in ((matrix, 1.0), (matrix.replace("4", "5"), 0.0), (f"\\boxed{{{matrix}}}", 1.0)):
        out = score(f"<answer>{answer}</answer>", rm)
        assert (out["accuracy"], out["failure"]) == (paid, None), (answer, out["detail"])


def test_math_reads_a_bare_latex_block_whole():
    # math-verify's extractor alone read '2' out of '2^{11}', so it matched a gold of 2^{10}
    assert score("<answer>2^{11}</answer>", {"verifier": "mathverify", "ground_truth": "2^{10}"})["accuracy"] == 0.0


def test_math_without_block_needs_one_anchored_answer():
    assert score("so \\boxed{3}", MATH)["accuracy"] == 1.0
    assert score("first \\boxed{4}, then \\boxed{3}", MATH)["failure"] == "parse"
    assert score("it is 3", MATH)["failure"] == "parse"


@pytest.mark.parametrize(
    ("text", "why"),
    [("(" * 12 + "2" + ")" * 12, "nested deeper"), ("\\frac{1}{" * 6 + "2" + "}" * 6, "nested deeper"),
     ("9^{9^{9}}", "power tower"), ("x^{y^{z^{w}}}", "powers nested"), ("10^{100000}", "too large"),
     ("100000!", "factorial"), ("5!!", "repeated factorial"), ("(10^{10})!", "too large|factorial"),
     ("9" * 41, "digits"), ("1+" * 200 + "1", "characters"), ("\\binom{100000}{5}", "binomial"),
     ("10^{999}" + "\\cdot 10^{999}" * 5, "too large")],
)  # fmt: skip
def test_math_limits_refuse_dear_expressions_before_math_verify(text, why):
    assert math_limits(text) is not None and __import__("re").search(why, math_limits(text))
    out = score(f"<answer>{text}</answer>", MATH)
    assert out["failure"] == "parse"


@pytest.mark.parametrize(
    "text", ["\\frac{\\sqrt{3}}{2}", "e^{-x^2}", "2^{10}", "[0, 1)", "\\{1, 2\\}", "10^{999}", "500!", "(n+1)!", "40^\\circ"]
)
def test_math_limits_let_ordinary_answers_through(text):
    assert math_limits(text) is None


def test_issue_example_is_cheap_now():
    out = score("<answer>\\boxed{((((((((((((2))))))))))))}</answer>", {"verifier": "mathverify", "ground_truth": "2"})
    assert out["failure"] == "parse" and "nested deeper" in out["detail"]


# ----------------------------------------------------------------------------- ocr
def test_ocr_reads_one_block_and_never_a_prefix():
    rm = {"verifier": "ocr", "ground_truth": "stop"}
    assert score("<answer>STOP</answer>", rm)["accuracy"] == 1.0
    assert score("<answer>go</answer><answer>stop</answer>", rm)["failure"] == "parse"
    assert score("<answer>stop go</answer>", rm)["accuracy"] == 0.0
    long_truth = {"verifier": "ocr", "ground_truth": "a" * 2000}
    padded = score("<answer>" + "a" * 2000 + " junk" * 1000 + "</answer>", long_truth)
    assert padded["failure"] == "parse" and padded["accuracy"] == 0.0  # was cut to its first 2000 characters
    anls = {"verifier": "ocr", "ground_truth": ["stop", "halt"], "verifier_parm": {"metric": "anls"}}
    assert score("<answer>stop halt</answer>", anls)["accuracy"] < 1.0


def test_levenshtein_matches_the_dynamic_programme():
    import random

    def reference(a: str, b: str) -> int:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]

    rng = random.Random(0)
    for _ in range(3000):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 14)))
        b = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 80)))
        assert levenshtein(a, b) == reference(a, b)


# ----------------------------------------------------------------------------- reward specs
@pytest.mark.parametrize(
    "ratios",
    [{"format_ratio": -3}, {"accuracy_ratio": math.inf}, {"accuracy_ratio": math.nan}, {"format_ratio": -0.0001},
     {"accuracy_ratio": "1"}, {"format_ratio": True}],
)  # fmt: skip
def test_ratios_must_be_finite_and_non_negative(ratios):
    rm = {"verifier": "counting", "ground_truth": 3, **ratios}
    with pytest.raises(ValueError, match="finite number >= 0"):
        validate_reward_model(rm)
    out = score("<answer>3</answer>", rm)
    assert out["failure"] == "spec" and out["reward"] == 0.0


def test_zero_ratios_are_allowed():
    validate_reward_model({"verifier": "counting", "ground_truth": 3, "accuracy_ratio": 0, "format_ratio": 0.0})


def test_out_of_range_accuracy_from_a_plugin_is_a_crash_not_a_reward():
    from lit_triune.rewards import register_verifier

    register_verifier("test_too_generous", replace=True)(lambda response, reward_model, ctx: 7.0)
    register_verifier("test_nan", replace=True)(lambda response, reward_model, ctx: math.nan)
    for name in ("test_too_generous", "test_nan"):
        out = score("x", {"verifier": name})
        assert out["failure"] == "crash" and out["reward"] == 0.0


_FRESH = """
import sys
from lit_triune.rewards import available_verifiers, validate_reward_model
spec = {"verifier": "debug_sleep", "verifier_parm": {"seconds": 1e9}}
assert "debug_sleep" not in available_verifiers()
assert "lit_triune.rewards.verifiers.debug" not in sys.modules
try:
    validate_reward_model(spec)
except ValueError as err:
    assert "opt-in" in str(err), err
else:
    sys.exit("debug_sleep passed validation without opting in")
import lit_triune.rewards.verifiers.debug  # the explicit opt-in
validate_reward_model(spec)
print("ok")
"""


def test_debug_verifiers_need_an_explicit_opt_in():
    # a fresh interpreter: this test session has opted in already (test_pool.py imports the module). Only the
    # rewards package is imported there (no torch), so it starts quickly even on a loaded machine.
    proc = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


GROUNDING = {"verifier": "grounding", "ground_truth": "[4, 4, 52, 52]", "verifier_parm": {"normalized": False}}


@pytest.mark.parametrize("answer", [
    "<answer>[4, 4, 52, 52] [60, 4, 108, 52]</answer>",                 # every candidate listed
    "<answer>[[4, 4, 52, 52], [60, 4, 108, 52]]</answer>",
    "<answer>[60, 4, 108, 52] or [4, 4, 52, 52]</answer>",
    "<answer>[60, 4, 108, 52]</answer><answer>[4, 4, 52, 52]</answer>",  # two blocks
])  # fmt: skip
def test_grounding_pays_one_box_only(answer):
    out = score(answer, GROUNDING, image_size=(112, 112), iou_threshold=0.85)
    assert (out["accuracy"], out["failure"]) == (0.0, "parse"), out


def test_grounding_one_box_with_a_label_is_read():
    out = score("<answer>[{'bbox_2d': [4, 4, 52, 52], 'label': 'red shape'}]</answer>", GROUNDING,
                image_size=(112, 112), iou_threshold=0.85)
    assert (out["accuracy"], out["failure"]) == (1.0, None)


def test_detection_two_answer_blocks_are_a_parse_failure():
    rm = {"verifier": "detection", "ground_truth": "[{'bbox_2d': [4, 4, 52, 52], 'label': 'square'}]",
          "verifier_parm": {"normalized": False}}
    out = score("<answer>[]</answer><answer>[{'bbox_2d': [4, 4, 52, 52], 'label': 'square'}]</answer>", rm,
                image_size=(112, 112), iou_threshold=0.85)
    assert (out["accuracy"], out["failure"]) == (0.0, "parse")


DETECTION_ONE_BOX = {"verifier": "detection", "ground_truth": "[{'bbox_2d': [4, 4, 52, 52], 'label': 'square'}]"}
PADDED_BOXES = ("<answer>[{'bbox_2d': [4, 4, 52, 52], 'label': 'square'}, "
                "{'bbox_2d': [60, 4, 108, 52], 'label': 'square'}]</answer>")  # the right box and a wrong one


@pytest.mark.parametrize("mode", ["combined", "iou", "map"])
def test_detection_extra_box_costs_the_count_penalty_in_every_mode(mode):
    # mean IoU over the ground truth and AP ignore an extra box: the plain modes paid a padded answer 1.0
    rm = {**DETECTION_ONE_BOX, "verifier_parm": {"normalized": False, "det_reward": mode}}
    one = score("<answer>[{'bbox_2d': [4, 4, 52, 52], 'label': 'square'}]</answer>", rm, iou_threshold=0.85)
    padded = score(PADDED_BOXES, rm, iou_threshold=0.85)
    assert one["accuracy"] == pytest.approx(1.0)
    assert padded["accuracy"] < 1.0 and padded["count_penalty"] == pytest.approx(0.6)
    if mode != "combined":
        assert padded["accuracy"] == pytest.approx(0.6)


@pytest.mark.parametrize("base", [1.0, 1.5, -0.5, math.nan, "0.6", True])
def test_detection_count_penalty_base_must_be_below_one(base):
    rm = {**DETECTION_ONE_BOX, "verifier_parm": {"normalized": False, "count_penalty_base": base}}
    with pytest.raises(ValueError, match="count_penalty_base"):
        validate_reward_model(rm)
    out = score(PADDED_BOXES, rm)
    assert (out["failure"], out["reward"]) == ("spec", 0.0)
