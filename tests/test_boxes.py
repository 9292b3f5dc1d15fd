"""lit_triune.boxes: the bounded reader of model output, strict ground truth, frames, the spec's box part."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lit_triune.boxes import (
    MAX_BOXES,
    Box,
    BoxError,
    format_boxes,
    is_normalized,
    parse_truth,
    read_box_spec,
    read_boxes,
    rescale,
    smart_resize,
    to_normalized,
    to_pixels,
    verifier_parm,
)


def test_python_literal_and_json():
    py = "[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}, {'bbox_2d': (5, 6.5, 7, 8), 'label': 'cat', 'confidence': 0.9}]"
    js = '[{"bbox_2d": [1, 2, 3, 4], "label": "dog"}, {"bbox_2d": [5, 6.5, 7, 8], "label": "cat"},]'
    expected = [Box(1, 2, 3, 4, "dog"), Box(5, 6.5, 7, 8, "cat")]
    assert read_boxes(py) == (expected, 0)
    assert read_boxes(js) == (expected, 0)
    assert read_boxes("```json\n" + js + "\n```")[0] == expected


def test_truncated_list_keeps_complete_items():
    text = "[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}, {'bbox_2d': [5, 6, 7"
    assert read_boxes(text) == ([Box(1, 2, 3, 4, "dog")], 0)


def test_bare_boxes_and_malformed_items():
    assert read_boxes("[10, 20, 30, 40]")[0] == [Box(10, 20, 30, 40)]
    assert read_boxes("[[1, 2, 3, 4], [5, 6, 7, 8]]")[0] == [Box(1, 2, 3, 4), Box(5, 6, 7, 8)]
    boxes, skipped = read_boxes(
        "[{'bbox_2d': [1, 2, 3]}, {'bbox_2d': [1, 2, 3, NaN]}, {'bbox_2d': [1e400, 2, 3, 4]}]"
    )
    assert boxes == [] and skipped == 3


def test_hostile_inputs_are_bounded():
    many = "[" + ", ".join("{'bbox_2d': [1, 2, 3, 4], 'label': 'a'}" for _ in range(100_000)) + "]"
    boxes, _ = read_boxes(many)
    assert len(boxes) == MAX_BOXES
    for text in [
        "[" * 5000,
        "{" * 5000,
        "[" + "9" * 100_000 + "]",
        "'" * 10_000,
        "[{'label': '" + "x" * 10**6,
    ]:
        assert read_boxes(text)[0] == []


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}(),:'\"0123456789.-e bbox_2dlabelNaN\\")), max_size=300))
def test_never_raises_on_bracket_soup(text):
    boxes, skipped = read_boxes(text)
    assert skipped >= 0 and all(isinstance(b, Box) for b in boxes)


# ---- ground truth (strict) --------------------------------------------------------------------


def test_truth_forms_and_style_round_trip():
    tagged = "<answer>\n[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}, {'bbox_2d': [5, 6, 7, 8], 'label': 'cat'}]\n</answer>"
    parsed = parse_truth(tagged, normalized=True)
    assert parsed.boxes == [Box(1, 2, 3, 4, "dog"), Box(5, 6, 7, 8, "cat")]
    assert (parsed.bare, parsed.tagged) == (False, True)
    assert format_boxes(parsed.boxes, tagged=True) == tagged
    bare = parse_truth("[10, 20, 30.5, 40]", normalized=False)
    assert (bare.boxes, bare.bare, bare.tagged) == ([Box(10, 20, 30.5, 40)], True, False)
    assert format_boxes(bare.boxes, bare=True) == "[10, 20, 30.5, 40]"
    assert parse_truth('{"bbox_2d": [1, 2, 3, 4]}', normalized=False).boxes == [Box(1, 2, 3, 4)]
    label = parse_truth("[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog\\'s'}]", normalized=False).boxes[0].label
    assert label == "dog's" and "'dog\\'s'" in format_boxes([Box(1, 2, 3, 4, label)])


@pytest.mark.parametrize(
    ("text", "normalized", "reason"),
    [
        ("nothing", False, "no parseable box"),
        ("[]", False, "no parseable box"),
        ("[{'bbox_2d': [1, 2, nan, 4], 'label': 'x'}]", False, "non-finite"),
        ("[{'bbox_2d': [1e400, 2, 3, 4], 'label': 'x'}]", False, "non-finite"),
        ("[{'bbox_2d': [9, 9, 1, 1], 'label': 'x'}]", False, "inverted"),
        ("[{'bbox_2d': [1, 2, 3], 'label': 'x'}]", False, "4 coordinates"),
        ("[{'bbox_2d': [1, 2, '3', 4], 'label': 'x'}]", False, "4 numbers"),
        ("[{'label': 'x'}]", False, "without 'bbox_2d'"),
        ("[-1, 2, 3, 4]", False, "negative"),
        ("[0, 0, 1001, 4]", True, "0..1000"),
        (5, False, "must be a string"),
    ],
)
def test_truth_errors_say_what_is_wrong(text, normalized, reason):
    with pytest.raises(BoxError, match=reason):
        parse_truth(text, normalized=normalized)


def test_truth_empty_list_and_image_bounds():
    assert parse_truth("<answer>\n[ ]\n</answer>", normalized=False, allow_empty=True).boxes == []
    assert parse_truth("[0, 0, 100.4, 50]", normalized=False, size=(50, 100)).boxes  # half-pixel slack
    with pytest.raises(BoxError, match="exceeds the image"):
        parse_truth("[0, 0, 101, 50]", normalized=False, size=(50, 100))


# ---- frames and the resize rule -------------------------------------------------------------


def test_frames_round_trip():
    # image as the model saw it: 420 high, 616 wide
    px = [Box(61.6, 42.0, 308.0, 210.0, "dog")]
    norm = to_normalized(px, (420, 616))
    assert norm[0].xyxy == pytest.approx((100.0, 100.0, 500.0, 500.0))
    assert to_pixels(norm, (420, 616))[0].xyxy == pytest.approx(px[0].xyxy)
    assert rescale(px, (420, 616), (210, 308))[0].xyxy == pytest.approx((30.8, 21.0, 154.0, 105.0))


def test_smart_resize_multiples_of_factor_within_bounds():
    assert smart_resize(112, 112) == (112, 112)
    h, w = smart_resize(1000, 3000, max_pixels=28 * 28 * 64)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 28 * 28 * 64
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 500)


# ---- the spec's box part ----------------------------------------------------------------------


def test_verifier_parm_forms():
    assert (
        verifier_parm({"verifier_parm": None})
        == {}
        == verifier_parm({})
        == verifier_parm({"verifier_parm": " "})
    )
    assert verifier_parm({"verifier_parm": '{"normalized": true}'}) == {"normalized": True}
    with pytest.raises(ValueError, match="not JSON"):
        verifier_parm({"verifier_parm": "{oops"})
    with pytest.raises(ValueError, match="must be a dict"):
        verifier_parm({"verifier_parm": [1]})
    assert is_normalized({"det_verifier_normalized": True}) and not is_normalized(
        {"normalized": False, "det_verifier_normalized": True}
    )


def test_box_spec_reads_once_and_gives_pixels_for_views():
    rm = {
        "verifier": "grounding",
        "ground_truth": "[0, 0, 500, 500]",
        "verifier_parm": '{"normalized": true}',
    }
    spec = read_box_spec(rm)
    assert spec.normalized and spec.boxes == [Box(0, 0, 500, 500)]
    assert spec.truth_in_pixels((200, 400))[0].xyxy == (0.0, 0.0, 200.0, 100.0)
    assert spec.in_truth_frame([Box(40, 20, 80, 40)], (200, 400))[0].xyxy == (100.0, 100.0, 200.0, 200.0)
    with pytest.raises(BoxError, match="no image_size"):  # 0-1000 truth never meets pixels unconverted
        spec.in_truth_frame([Box(40, 20, 80, 40)], None)
    pixels = read_box_spec({**rm, "verifier_parm": None})
    assert pixels.truth_in_pixels(None) == pixels.boxes == pixels.in_truth_frame(pixels.boxes, None)
    with pytest.raises(BoxError, match="0..1000"):
        read_box_spec({**rm, "ground_truth": "[0, 0, 1500, 500]"})
