"""IoU properties (hypothesis) and the two greedy matchers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lit_triune.boxes import Box
from lit_triune.rewards.matching import box_iou, iou_matrix, match_iou_first, match_label_first

coord = st.floats(min_value=-2000, max_value=2000, allow_nan=False, allow_infinity=False)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x1, y1 = draw(coord), draw(coord)
    w, h = draw(st.floats(0, 1500)), draw(st.floats(0, 1500))
    return (x1, y1, x1 + w, y1 + h)


@settings(max_examples=200, deadline=None)
@given(boxes(), boxes())
def test_iou_symmetric_and_bounded(a, b):
    iou = box_iou(a, b)
    assert iou == box_iou(b, a)
    assert 0.0 <= iou <= 1.0


@settings(max_examples=100, deadline=None)
@given(boxes())
def test_iou_identical_boxes_is_one(a):
    if (a[2] - a[0]) * (a[3] - a[1]) > 1e-6:  # a box with area
        assert box_iou(a, a) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=5), st.lists(boxes(), min_size=1, max_size=5))
def test_iou_matrix_matches_scalar_iou(pred, gt):
    to_box = lambda b: Box(*b, label="x")  # noqa: E731
    mat = iou_matrix([to_box(b) for b in pred], [to_box(b) for b in gt])  # [P, G]
    expected = np.array([[box_iou(p, g) for g in gt] for p in pred])
    np.testing.assert_allclose(mat, expected, atol=1e-9)


def test_iou_hand_values():
    # overlap 50x100 = 5000, union 10000 + 10000 - 5000 = 15000
    assert box_iou((0, 0, 100, 100), (50, 0, 150, 100)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert box_iou((5, 5, 5, 9), (0, 0, 10, 10)) == 0.0  # zero area
    assert box_iou((10, 10, 0, 0), (0, 0, 10, 10)) == 0.0  # inverted


def test_label_first_prefers_best_same_label_box():
    gt = [Box(0, 0, 100, 100, "dog")]
    pred = [Box(0, 0, 100, 100, "cat"), Box(10, 0, 100, 100, "Dog"), Box(0, 0, 100, 100, "dog")]
    matches = match_label_first(pred, gt, iou_matrix(pred, gt), 0.5)
    assert [(m.pred, m.gt, m.iou) for m in matches] == [(2, 0, 1.0)]


def test_iou_first_credits_the_pair_it_found():
    # the released matcher would pair the *last* prediction with the last ground truth here
    gt = [Box(0, 0, 100, 100, "dog"), Box(500, 500, 600, 600, "cat")]
    pred = [Box(0, 0, 100, 100, "dog"), Box(0, 0, 100, 90, "cat")]
    matches = match_iou_first(pred, gt, iou_matrix(pred, gt), 0.5)
    assert [(m.pred, m.gt, m.iou) for m in matches] == [(0, 0, 1.0)]  # (1, 1) has IoU 0: unmatched


def test_iou_first_label_mismatch_is_matched_but_worth_zero():
    gt = [Box(0, 0, 100, 100, "dog")]
    pred = [Box(0, 0, 100, 100, "cat")]
    matches = match_iou_first(pred, gt, iou_matrix(pred, gt), 0.5)
    assert [(m.pred, m.gt, m.iou) for m in matches] == [(0, 0, 0.0)]
