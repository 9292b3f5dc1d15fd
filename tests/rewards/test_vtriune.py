"""compat="vtriune": expected values derived by hand from the released reward server's code
(MiniMax-AI/One-RL-to-See-Them-All, reward_server/verify.py, utils/det_helper.py, reward_serving_fastapi.py)."""

from __future__ import annotations

import pytest

from lit_triune.rewards import score

NL_THINK = "<think>\nreasoning\n</think>\n"


def vt(response: str, rm: dict, **kw) -> dict:
    return score(response, rm, compat="vtriune", **kw)


def math_rm(gt: str, acc=1.0, fmt=0.1) -> dict:
    # Orsta math rows carry detection keys set to None; the released constructor accepts them
    parm = {"det_verifier_normalized": None, "det_reward_ratio": {"iou_max_label_first": None, "map": None}}
    return {
        "verifier": "mathverify",
        "ground_truth": gt,
        "accuracy_ratio": acc,
        "format_ratio": fmt,
        "verifier_parm": parm,
    }


def test_math_final_weighting_is_normalised_by_the_ratio_sum():
    out = vt(NL_THINK + "<answer>\n\\boxed{4}\n</answer>", math_rm("\\boxed{4}"))
    # acc 1, fmt 1 (all four newline tags once): 1 * 1/1.1 + 1 * 0.1/1.1
    assert (out["accuracy"], out["format"]) == (1.0, 1.0)
    assert out["reward"] == 1.0 * (1.0 / 1.1) + 1.0 * (0.1 / 1.1)


def test_math_format_wants_newline_delimited_tags():
    out = vt("<think>r</think><answer>\\boxed{4}</answer>", math_rm("\\boxed{4}"))
    assert (out["accuracy"], out["format"]) == (1.0, 0.0)  # default mode would give format 1.0
    assert out["reward"] == pytest.approx(1 / 1.1)


def test_math_reads_only_anchored_answers_and_lowercases():
    assert (
        vt("<answer>4</answer>", math_rm("4"))["accuracy"] == 0.0
    )  # no \boxed, no "answer is": nothing read
    assert score("<answer>4</answer>", math_rm("4"))["accuracy"] == 1.0  # default mode reads the answer block
    assert vt("The final answer is $4$", math_rm("4"))["accuracy"] == 1.0
    assert vt("\\boxed{a}", math_rm("\\boxed{A}"))["accuracy"] == 1.0  # both sides lowercased
    assert vt("\\boxed{4}", math_rm("no math here"))["accuracy"] == 0.0  # unparseable gold scores 0


def test_math_ratio_defaults_are_one_and_point_one():
    rm = {"verifier": "mathverify", "ground_truth": "4"}
    out = vt("\\boxed{4}", rm)
    assert out["reward"] == 1.0 * (1.0 / 1.1) + 0.0 * (0.1 / 1.1)


DET_GT = "<answer>\n[{'bbox_2d': [0, 0, 500, 500], 'label': 'dog'}, {'bbox_2d': [500, 500, 1000, 1000], 'label': 'cat'}]\n</answer>"


def det_rm(ratios: dict, normalized=True) -> dict:
    return {"verifier": "detection", "ground_truth": DET_GT, "accuracy_ratio": 1.0, "format_ratio": 0.1,
            "verifier_parm": {"det_verifier_normalized": normalized, "det_reward_ratio": ratios}}  # fmt: skip


def test_detection_truncating_normalisation_and_average_threshold():
    # image seen as 200 high x 400 wide; dog exact, cat x2 = 399 px -> 399/400*1000 = 997.5 -> int 997,
    # y2 = 199 px -> 995. cat IoU = (497 * 495) / (500 * 500) = 0.98406
    pred = (
        NL_THINK
        + "<answer>\n[{'bbox_2d': [0, 0, 200, 100], 'label': 'Dog'}, {'bbox_2d': [200, 100, 399, 199], 'label': 'cat'}]\n</answer>"
    )
    ratios = {
        "iou_max_label_first": 1.0,
        "iou_max_iou_first": 0.0,
        "iou_completeness": 0.3,
        "map": 0.0,
        "map50": 0.0,
        "map75": 0.0,
    }
    out = vt(pred, det_rm(ratios), image_size=(200, 400))
    cat = 497 * 495 / 250000
    both = ((1.0 + cat) / 2) * 0.7 + 1.0 * 0.3  # thresholds 0.50 .. 0.95: both matched, completeness 1
    dog_only = 0.5 * 0.7 + 0.5 * 0.3  # threshold 0.99: cat unmatched, miss 1/2, false alarm 1/2
    assert out["accuracy"] == pytest.approx(
        (10 * both + dog_only) / 11, abs=1e-12
    )  # 'average' of 11 thresholds
    assert out["format"] == 1.0
    assert out["reward"] == pytest.approx(out["accuracy"] / 1.1 + 0.1 / 1.1, abs=1e-12)
    # boxes for image views come back in pixels: the truncated 997 / 995 show as 398.8 / 199.0
    assert out["pred_boxes"][0] == pytest.approx([0, 0, 200, 100])
    assert out["pred_boxes"][1] == pytest.approx([200, 100, 398.8, 199.0])
    # one chosen threshold: 0.99 selects the dog-only score; default mode does not truncate (x2 = 997.5)
    assert vt(pred, det_rm(ratios), image_size=(200, 400), iou_threshold=0.99)["accuracy"] == pytest.approx(
        dog_only
    )
    assert score(pred, det_rm(ratios), image_size=(200, 400), iou_threshold=0.5)["iou"] == pytest.approx(
        (1 + 497.5 * 495 / 250000) / 2
    )


def test_detection_iou_first_matcher_bug_is_reproduced_and_fixed_by_default():
    gt = "<answer>\n[{'bbox_2d': [0, 0, 100, 100], 'label': 'dog'}, {'bbox_2d': [500, 500, 600, 600], 'label': 'cat'}]\n</answer>"
    pred = "<answer>\n[{'bbox_2d': [0, 0, 100, 100], 'label': 'dog'}, {'bbox_2d': [0, 0, 100, 90], 'label': 'cat'}]\n</answer>"
    ratios = {"iou_max_iou_first": 1.0, "iou_completeness": 0.0}
    rm = {"verifier": "detection", "ground_truth": gt, "verifier_parm": {"det_reward_ratio": ratios}}
    # released: round 1 finds max IoU 1.0 (dog, dog) but credits it to the *last* pair (cat pred, cat gt),
    # whose labels agree; round 2 credits (dog, dog) 1.0 -> mean IoU 2/2 = 1 although the cat box is wrong
    assert vt(pred, rm, iou_threshold=0.5)["accuracy"] == 1.0
    # fixed: (dog, dog) credited 1.0, then (cat, cat) has IoU 0 < 0.5 -> mean IoU 1/2
    assert score(pred, rm, iou_threshold=0.5)["accuracy"] == pytest.approx(0.5)


def test_detection_format_is_binary_and_needs_parseable_boxes():
    ratios = {"iou_max_label_first": 1.0}
    ok = vt(
        "\n<answer>\n[{'bbox_2d': [0, 0, 1, 1], 'label': 'dog'}]\n</answer>", det_rm(ratios, normalized=False)
    )
    no_boxes = vt("\n<answer>\nnothing\n</answer>", det_rm(ratios, normalized=False))
    inline = vt(
        "<answer>[{'bbox_2d': [0, 0, 1, 1], 'label': 'dog'}]</answer>", det_rm(ratios, normalized=False)
    )
    assert (ok["format"], no_boxes["format"], inline["format"]) == (1.0, 0.0, 0.0)


def test_server_zeroes_everything_when_anything_raises():
    rm = det_rm({"iou_max_label_first": 1.0})
    rm["verifier_parm"]["unexpected_key"] = 1  # the released constructor raises TypeError
    out = vt("\n<answer>\n[{'bbox_2d': [0, 0, 1, 1], 'label': 'dog'}]\n</answer>", rm, image_size=(10, 10))
    assert (out["reward"], out["accuracy"], out["format"], out["failure"]) == (0.0, 0.0, 0.0, "crash")
    none_ratio = det_rm({"iou_max_label_first": None})  # None < 0 raises in the released constructor
    assert vt("<answer>[]</answer>", none_ratio)["failure"] == "crash"
    assert (
        vt("\\boxed{1}", {"verifier": "counting", "ground_truth": "1"})["reward"] == 0.0
    )  # no such verifier there


def test_zero_ratio_sum_keeps_parts_but_zeroes_reward():
    out = vt(NL_THINK + "<answer>\n\\boxed{4}\n</answer>", math_rm("4", acc=0.0, fmt=0.0))
    assert (out["reward"], out["accuracy"], out["format"]) == (0.0, 1.0, 1.0)
