"""The bounded box-list parser: formats models write, and input meant to hurt."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from lit_triune.rewards.boxparse import MAX_BOXES, Box, parse_boxes


def test_python_literal_and_json():
    py = "[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}, {'bbox_2d': (5, 6.5, 7, 8), 'label': 'cat', 'confidence': 0.9}]"
    js = '[{"bbox_2d": [1, 2, 3, 4], "label": "dog"}, {"bbox_2d": [5, 6.5, 7, 8], "label": "cat"},]'
    expected = [Box(1, 2, 3, 4, "dog"), Box(5, 6.5, 7, 8, "cat")]
    assert parse_boxes(py) == (expected, 0)
    assert parse_boxes(js) == (expected, 0)
    assert parse_boxes("```json\n" + js + "\n```")[0] == expected


def test_truncated_list_keeps_complete_items():
    text = "[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}, {'bbox_2d': [5, 6, 7"
    assert parse_boxes(text) == ([Box(1, 2, 3, 4, "dog")], 0)


def test_bare_boxes_and_malformed_items():
    assert parse_boxes("[10, 20, 30, 40]")[0] == [Box(10, 20, 30, 40)]
    assert parse_boxes("[[1, 2, 3, 4], [5, 6, 7, 8]]")[0] == [Box(1, 2, 3, 4), Box(5, 6, 7, 8)]
    boxes, skipped = parse_boxes(
        "[{'bbox_2d': [1, 2, 3]}, {'bbox_2d': [1, 2, 3, NaN]}, {'bbox_2d': [1e400, 2, 3, 4]}]"
    )
    assert boxes == [] and skipped == 3


def test_hostile_inputs_are_bounded():
    many = "[" + ", ".join("{'bbox_2d': [1, 2, 3, 4], 'label': 'a'}" for _ in range(100_000)) + "]"
    start = time.perf_counter()
    boxes, _ = parse_boxes(many)
    assert len(boxes) == MAX_BOXES
    for text in [
        "[" * 5000,
        "{" * 5000,
        "[" + "9" * 100_000 + "]",
        "'" * 10_000,
        "[{'label': '" + "x" * 10**6,
    ]:
        assert parse_boxes(text)[0] == []
    assert time.perf_counter() - start < 5.0


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}(),:'\"0123456789.-e bbox_2dlabelNaN\\")), max_size=300))
def test_never_raises_on_bracket_soup(text):
    boxes, skipped = parse_boxes(text)
    assert skipped >= 0 and all(isinstance(b, Box) for b in boxes)
