"""Per-sample rollout records (docs/interfaces.md), the per-source sums of the stage reports, and the
advantage cases test_loss.py leaves out."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from torch.testing import assert_close

from lit_triune.rl.advantages import group_advantages, informative_groups
from lit_triune.rl.records import build_records, source_summary
from lit_triune.rl.rollout_step import ScoredRollout

RESULTS = [
    {"reward": 1.0, "accuracy": 1.0, "format": 1.0, "iou": 0.9, "failure": None,
     "pred_boxes": [[1, 2, 30, 40]], "gt_boxes": [[0, 0, 30, 40]]},
    {"reward": 0.1, "accuracy": 0.0, "format": 1.0, "failure": None},  # a verifier without iou
    {"reward": 0.0, "accuracy": 0.0, "format": 0.0, "failure": "timeout"},
    {"reward": 0.5, "accuracy": True, "format": 0, "map": 0.25, "precision": "n/a", "failure": None},
]


def _records(images=None):
    return build_records(data_sources=["a", "a", "b", "b"], prompts=["p0"] * 2 + ["p1"] * 2,
                         responses=["r0", "r1", "r2", "r3"], results=RESULTS,
                         response_lengths=torch.tensor([3, 5, 8, 1], dtype=torch.int32),
                         truncated=torch.tensor([0, 0, 1, 0]), images=images)


def test_records_follow_the_interface():
    rec = _records()
    assert rec["data_source"] == ["a", "a", "b", "b"] and rec["response"] == ["r0", "r1", "r2", "r3"]
    assert rec["prompt"] == ["p0", "p0", "p1", "p1"]
    for key in ("reward", "accuracy", "format", "iou", "precision", "recall", "map"):
        assert rec[key].dtype == torch.float32 and rec[key].shape == (4,), key
    assert_close(rec["reward"], torch.tensor([1.0, 0.1, 0.0, 0.5]))
    assert_close(rec["accuracy"], torch.tensor([1.0, 0.0, 0.0, 1.0]))  # bools count as 0/1
    assert rec["response_length"].dtype == torch.long and rec["response_length"].tolist() == [3, 5, 8, 1]
    assert rec["truncated"].dtype == torch.bool and rec["truncated"].tolist() == [False, False, True, False]
    assert rec["verifier_failure"].tolist() == [False, False, True, False]
    # optional sub-scores: NaN where the verifier has none (or gave a non-number)
    assert rec["iou"][0].item() == pytest.approx(0.9) and all(math.isnan(v) for v in rec["iou"][1:].tolist())
    assert math.isnan(rec["map"][0]) and rec["map"][3].item() == 0.25
    assert all(math.isnan(v) for v in rec["precision"].tolist() + rec["recall"].tolist())
    assert "images" not in rec and "pred_boxes" not in rec


def test_records_with_images_carry_boxes():
    images = [Image.new("RGB", (28, 28))] * 4
    rec = _records(images)
    assert rec["images"] == images
    assert rec["pred_boxes"] == [[[1, 2, 30, 40]], [], [], []]
    assert rec["gt_boxes"] == [[[0, 0, 30, 40]], [], [], []]


def test_source_summary_sums_per_source():
    summary = source_summary(_records())
    assert summary == {"a": {"accuracy": 1.0, "format": 2.0, "reward": pytest.approx(1.1), "count": 2.0},
                       "b": {"accuracy": 1.0, "format": 0.0, "reward": 0.5, "count": 2.0}}


def test_scored_rollout_records_repeat_prompt_fields_per_completion():
    images = [Image.new("RGB", (28, 28), (i, 0, 0)) for i in range(2)]
    scored = ScoredRollout(group_size=2, prompts=["p0", "p1"], images=images, image_sizes=[(28, 28)] * 2,
                           reward_models=[{}, {}], data_sources=["a", "b"],
                           completion_ids=[[1], [1, 2], [1, 2, 3], []], texts=["x", "y", "z", "w"],
                           truncated=torch.tensor([False, True, False, False]), results=RESULTS)
    rec = scored.records()
    assert rec["data_source"] == ["a", "a", "b", "b"] and rec["prompt"] == ["p0", "p0", "p1", "p1"]
    assert rec["images"] == [images[0], images[0], images[1], images[1]]
    assert rec["response_length"].tolist() == [1, 2, 3, 0]
    kept = scored.select_groups([1])
    assert kept.prompts == ["p1"] and kept.texts == ["z", "w"] and kept.truncated.tolist() == [False, False]
    assert kept.prompt_index.tolist() == [0, 0]
    both = ScoredRollout.concat([kept, scored.select_groups([0])])
    assert both.texts == ["z", "w", "x", "y"] and both.data_sources == ["b", "a"]


def test_group_advantages_batch_scale_and_constant_groups():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.7, 0.7, 0.7, 0.7])
    centred = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0])
    assert_close(group_advantages(rewards, 4, "batch"), centred / (rewards.std() + 1e-4))
    assert_close(group_advantages(rewards, 4, "group")[4:], torch.zeros(4))  # no signal, no NaN
    assert_close(group_advantages(torch.ones(4), 4, "batch"), torch.zeros(4))
    with pytest.raises(ValueError, match="scale"):
        group_advantages(rewards, 4, "median")
    assert informative_groups(rewards, 4).tolist() == [True, False]


def test_answer_counts_and_spread_show_one_answer_for_every_image():
    from lit_triune.rl.records import answer_counts, answer_spread, final_answer

    assert final_answer("<think>x</think><answer> 3 </answer>") == "3"
    assert final_answer("<answer>1</answer><answer>2</answer>") == "2" and final_answer(" 7 ") == "7"
    records = {"data_source": ["m", "m", "m", "m", "o", "o"],
               "response": ["<answer>3</answer>"] * 4 + ["<answer>sun</answer>", "<answer>go</answer>"]}
    counts = answer_counts(records, ["3", "2", "4", "3", ["sun"], ["go"]])
    spread = answer_spread(counts)
    assert spread["m"] == {"top_answer": 1.0, "top_truth": 0.5, "distinct_answers": 1.0}
    assert spread["o"] == {"top_answer": 0.5, "top_truth": 0.5, "distinct_answers": 2.0}
