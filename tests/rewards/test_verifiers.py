"""Default-mode verifiers through the public `score()`: frames, matching, penalties, parse/spec failures."""

from __future__ import annotations

import math

import pytest

from lit_triune.rewards import STANDARD_SUBSCORES, score

THINK = "<think>\nlooking\n</think>\n"
RATIOS = {
    "iou_max_label_first": 1.0,
    "iou_max_iou_first": 0.0,
    "iou_completeness": 0.3,
    "map": 0.0,
    "map50": 0.0,
    "map75": 0.0,
}


def det_spec(gt: str, normalized: bool = True, **parm) -> dict:
    return {
        "verifier": "detection",
        "ground_truth": f"<answer>\n{gt}\n</answer>",
        "accuracy_ratio": 1.0,
        "format_ratio": 0.1,
        "verifier_parm": {"det_verifier_normalized": normalized, "det_reward_ratio": dict(RATIOS), **parm},
    }


def test_result_has_fixed_keys():
    out = score("<answer>\\boxed{2}</answer>", {"verifier": "mathverify", "ground_truth": "2"})
    for key in ("reward", "accuracy", "format", "failure", *STANDARD_SUBSCORES):
        assert key in out
    assert math.isnan(out["iou"]) and out["failure"] is None


def test_math_reward_combines_accuracy_and_format():
    rm = {
        "verifier": "mathverify",
        "ground_truth": "\\boxed{\\frac{1}{2}}",
        "accuracy_ratio": 1.0,
        "format_ratio": 0.5,
    }
    out = score(THINK + "<answer>0.5</answer>", rm)
    assert (out["accuracy"], out["format"]) == (1.0, 1.0)
    assert out["reward"] == pytest.approx(
        1.0 * 1.0 + 0.5 * 1.0
    )  # paper: R = a*R_acc + f*R_fmt, not normalised
    wrong = score("<think>x</think><answer>\\boxed{3}</answer><answer>", rm)
    assert wrong["accuracy"] == 0.0 and wrong["format"] == 0.75  # '<answer>' twice: 3 of 4 tags
    unanchored = score("so it is 0.5", rm)  # no <answer>, no \boxed: nothing is taken from the reasoning
    assert unanchored["accuracy"] == 0.0 and unanchored["failure"] == "parse"


def test_detection_converts_pixels_to_the_normalised_frame():
    gt = "[{'bbox_2d': [100, 100, 500, 500], 'label': 'dog'}]"
    # the same box in pixels of a 420 x 616 (h x w) image
    pred = THINK + "<answer>\n[{'bbox_2d': [61.6, 42, 308, 210], 'label': 'dog'}]\n</answer>"
    out = score(pred, det_spec(gt), image_size=(420, 616), iou_threshold=0.85)
    assert out["iou"] == pytest.approx(1.0) and out["accuracy"] == pytest.approx(1.0)
    assert out["map"] == pytest.approx(1.0) and out["precision"] == 1.0 and out["recall"] == 1.0
    assert out["pred_boxes"] == [[61.6, 42.0, 308.0, 210.0]] and out["gt_boxes"][0] == pytest.approx(
        [61.6, 42, 308, 210]
    )
    missing = score(pred, det_spec(gt))  # normalised truth, no image size: a spec error, not a silent 0
    assert missing["failure"] == "spec" and "image_size" in missing["detail"]
    same_frame = score(
        pred.replace("61.6, 42, 308, 210", "100, 100, 500, 500"), det_spec(gt, normalized=False)
    )
    assert same_frame["accuracy"] == pytest.approx(1.0)


def test_detection_completeness_penalty_and_threshold():
    gt = "[{'bbox_2d': [0, 0, 100, 100], 'label': 'dog'}, {'bbox_2d': [200, 200, 300, 300], 'label': 'cat'}]"
    # one exact dog, one dog false alarm; the cat is missed
    pred = "<answer>[{'bbox_2d': [0, 0, 100, 100], 'label': 'dog'}, {'bbox_2d': [600, 600, 700, 700], 'label': 'dog'}]</answer>"
    out = score(pred, det_spec(gt, normalized=False), iou_threshold=0.5)
    # mean IoU = 1/2; miss = 1/2, false alarm = 1/2 -> completeness 1/2; weighted 0.5*0.7 + 0.5*0.3; penalty 0.6^0
    assert out["accuracy"] == pytest.approx(0.5)
    assert (out["precision"], out["recall"], out["completeness"], out["count_penalty"]) == (
        0.5,
        0.5,
        0.5,
        1.0,
    )
    three = pred.replace("]</answer>", ", {'bbox_2d': [0, 0, 5, 5], 'label': 'cat'}]</answer>")
    out3 = score(three, det_spec(gt, normalized=False), iou_threshold=0.5)
    # 3 predictions for 2 truths: completeness 1 - (1/2 + 2/3)/2, count penalty 0.6
    assert out3["accuracy"] == pytest.approx((0.5 * 0.7 + (1 - (0.5 + 2 / 3) / 2) * 0.3) * 0.6)
    shifted = "<answer>[{'bbox_2d': [10, 0, 110, 100], 'label': 'dog'}, {'bbox_2d': [200, 200, 300, 300], 'label': 'cat'}]</answer>"
    lo = score(shifted, det_spec(gt, normalized=False), iou_threshold=0.5)
    hi = score(shifted, det_spec(gt, normalized=False), iou_threshold=0.85)  # dog IoU 90/110 = 0.818 < 0.85
    assert lo["iou"] == pytest.approx((90 / 110 + 1) / 2) and hi["iou"] == pytest.approx(0.5)


def test_detection_plain_iou_and_map_rewards():
    gt = "[{'bbox_2d': [0, 0, 100, 100], 'label': 'dog'}]"
    pred = "<answer>[{'bbox_2d': [0, 0, 81, 100], 'label': 'dog'}]</answer>"
    iou = score(pred, det_spec(gt, normalized=False, det_reward="iou"), iou_threshold=0.5)
    mAP = score(pred, det_spec(gt, normalized=False, det_reward="map"), iou_threshold=0.5)
    assert iou["accuracy"] == pytest.approx(0.81) and mAP["accuracy"] == pytest.approx(0.7)


def test_detection_parse_failure_is_counted_not_raised():
    out = score(
        "<answer>I see a dog somewhere</answer>",
        det_spec("[{'bbox_2d': [0, 0, 1, 1], 'label': 'dog'}]"),
        image_size=(10, 10),
    )
    assert out["failure"] == "parse" and out["accuracy"] == 0.0 and out["reward"] == pytest.approx(0.1 * 0.5)


def test_grounding():
    rm = {"verifier": "grounding", "ground_truth": "[0, 0, 500, 500]", "verifier_parm": {"normalized": True}}
    hit = score("<answer>[0, 0, 100, 50]</answer>", rm, image_size=(100, 200), iou_threshold=0.5)
    assert hit["iou"] == pytest.approx(1.0) and hit["accuracy"] == pytest.approx(1.0)
    near = score(
        "<answer>{'bbox_2d': [0, 0, 80, 50]}</answer>", rm, image_size=(100, 200), iou_threshold=0.85
    )
    assert near["iou"] == pytest.approx(0.8) and near["accuracy"] == 0.0  # IoU if IoU >= eps else 0
    binary = dict(rm, verifier_parm={"normalized": True, "binary": True})
    assert (
        score("<answer>[0, 0, 80, 50]</answer>", binary, image_size=(100, 200), iou_threshold=0.5)["accuracy"]
        == 1.0
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("3", 1.0), ("three", 1.0), ("There are 3 dogs.", 1.0), ("twenty-one", 0.0), ("4", 0.0)],
)
def test_counting(answer, expected):
    assert (
        score(f"<answer>{answer}</answer>", {"verifier": "counting", "ground_truth": 3})["accuracy"]
        == expected
    )


def test_counting_number_words_in_truth():
    assert (
        score("<answer>21</answer>", {"verifier": "counting", "ground_truth": "twenty-one"})["accuracy"]
        == 1.0
    )


def test_ocr_exact_and_anls():
    rm = {"verifier": "ocr", "ground_truth": "Hello World"}
    assert score("<answer> hello   world. </answer>", rm)["accuracy"] == 1.0
    anls_rm = {"verifier": "ocr", "ground_truth": ["hello world"], "verifier_parm": {"metric": "anls"}}
    out = score("<answer>hello wrld</answer>", anls_rm)
    assert out["accuracy"] == pytest.approx(1 - 1 / 11) and out["exact"] == 0.0


@pytest.mark.parametrize(
    "rm",
    [
        {"verifier": "nope"},
        {"verifier": "detection", "ground_truth": "no boxes here"},
        {
            "verifier": "detection",
            "ground_truth": "[0,0,1,1]",
            "verifier_parm": {"det_reward_ratio": {"map": 2.0}},
        },
        {"verifier": "counting", "ground_truth": "many"},
        "not a dict",
    ],
)
def test_bad_specs_score_zero_with_reason(rm):
    out = score("<answer>1</answer>", rm)
    assert out["failure"] == "spec" and out["reward"] == 0.0 and out["detail"]


def test_format_variants():
    rm = {"verifier": "counting", "ground_truth": 1, "format_ratio": 1.0, "accuracy_ratio": 0.0}
    compact = "<think>x</think><answer>1</answer>"
    assert score(compact, rm)["format"] == 1.0
    assert score(compact, dict(rm, verifier_parm={"format_reward": "tags_newline"}))["format"] == 0.0
    assert score(compact, dict(rm, verifier_parm={"format_reward": "bogus"}))["failure"] == "spec"


@pytest.mark.parametrize(
    ("text", "value"),
    # "two and three" is two numbers: a parse failure (issue 17), no longer the first of them
    [("one hundred and five", 105), ("two and three", None), ("a dozen", 12), ("none", 0)],
)
def test_number_words(text, value):
    from lit_triune.rewards.text import parse_count

    assert parse_count(text) == value


def test_module_score_batch_keeps_order_and_checks_lengths():
    from lit_triune.rewards import score_batch

    rms = [{"verifier": "counting", "ground_truth": n} for n in (1, 2, 3)]
    out = score_batch(["<answer>1</answer>", "<answer>5</answer>", "<answer>3</answer>"], rms)
    assert [r["accuracy"] for r in out] == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="same length"):
        score_batch(["a"], rms)


def test_batch_image_sizes_is_the_one_length_check_of_score_batch_and_the_pool():
    from lit_triune.rewards.scoring import batch_image_sizes

    rms = [{"verifier": "counting", "ground_truth": 1}] * 2
    assert batch_image_sizes(["a", "b"], rms, None) == [None, None]
    assert batch_image_sizes(["a", "b"], rms, [(4, 4), None]) == [(4, 4), None]
    for responses, sizes in ((["a"], None), (["a", "b"], [(4, 4)])):
        with pytest.raises(ValueError, match="must have the same length"):
            batch_image_sizes(responses, rms, sizes)
