import re

import pytest

from lit_triune.boxes import parse_truth
from lit_triune.data import TASKS, generate, sft_target, validate_sample
from lit_triune.data.images import encode_png
from lit_triune.data.synthetic import DIFFICULTIES, parse_counts


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_valid_and_deterministic(task, difficulty):
    a = generate(task, 4, seed=3, difficulty=difficulty)
    b = generate(task, 4, seed=3, difficulty=difficulty)
    for x, y in zip(a, b, strict=True):
        validate_sample(x, check_images=True)
        assert encode_png(x["images"][0]) == encode_png(y["images"][0])
        assert x["reward_model"] == y["reward_model"]
        assert "<think>" in x["prompt"][0]["content"] and "<answer>" in x["prompt"][0]["content"]
        target = x["extra_info"]["sft_target"]
        assert target == sft_target(x["reward_model"], (112, 112), think=x["extra_info"]["think"])
        assert target.endswith(f"<answer>{x['reward_model']['ground_truth']}</answer>")
    assert generate(task, 4, seed=4, difficulty=difficulty) != a or task == "puzzle"


def test_easy_levels_are_coarse():
    counts = {s["reward_model"]["ground_truth"] for s in generate("counting", 60)}
    assert counts == {"1", "2", "3", "4", "5"}
    boxes, counts = set(), set()
    for s in generate("detection", 60):
        parsed = parse_truth(s["reward_model"]["ground_truth"], normalized=False).boxes
        counts.add(len(parsed))
        corners = [(b.y1, b.x1) for b in parsed]
        assert corners == sorted(corners)  # reading order: one canonical answer per image
        for box in parsed:
            boxes.add((box.x1, box.y1, box.x2, box.y2))
            assert box.x2 - box.x1 == 32
    assert len(boxes) == 4 and counts == {1, 2, 3}  # 1-3 boxes from four fixed cells
    grounding = {s["reward_model"]["ground_truth"] for s in generate("grounding", 60)}
    assert len(grounding) == 4
    assert {len(s["reward_model"]["ground_truth"]) for s in generate("math", 30)} == {1}


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown synthetic task 'nope'"):
        generate("nope", 1)
    with pytest.raises(ValueError, match="difficulty must be one of"):
        generate("counting", 1, difficulty="brutal")


@pytest.mark.parametrize("task", sorted(TASKS))
def test_sft_target_is_what_the_verifier_scores_correct(task):
    from lit_triune.rewards import score

    for difficulty in DIFFICULTIES:
        for s in generate(task, 3, seed=2, difficulty=difficulty):
            r = score(s["extra_info"]["sft_target"], s["reward_model"], image_size=(112, 112), iou_threshold=0.99)
            assert (r["accuracy"], r["format"], r["failure"]) == (1.0, 1.0, None), (difficulty, r)


def test_question_first_layout_moves_only_the_image_placeholder():
    image_first = generate("grounding", 3, seed=4)
    question_first = generate("grounding", 3, seed=4, layout="question_first")
    for a, b in zip(image_first, question_first, strict=True):
        text_a, text_b = a["prompt"][0]["content"], b["prompt"][0]["content"]
        assert text_a.startswith("<image>Locate the ") and text_b.endswith("</answer>.<image>")
        assert text_b == text_a.removeprefix("<image>") + "<image>"
        assert a["reward_model"] == b["reward_model"] and a["extra_info"] == b["extra_info"]
        assert a["images"][0].tobytes() == b["images"][0].tobytes()
    with pytest.raises(ValueError, match="prompt layout must be one of"):
        generate("counting", 1, layout="sideways")


def test_parse_counts_sums_repeats_and_names_bad_arguments() -> None:
    assert parse_counts(["grounding=5", "math=2", "grounding=3"], "--val") == {"grounding": 8, "math": 2}
    for bad in ("grounding", "grounding=0", "grounding=-1", "grounding=x", "=4"):
        with pytest.raises(SystemExit, match=r"--val takes TASK=N .*" + re.escape(repr(bad))):
            parse_counts([bad], "--val")
    with pytest.raises(SystemExit, match="unknown task 'groundng'.*tasks: counting"):
        parse_counts(["groundng=4"], "--synthetic")
