"""Format rewards: did the completion keep the `<think>...</think><answer>...</answer>` contract?

`tags` is the paper's reward, 0.25 per tag that occurs exactly once. `tags_newline` is the released
math verifier's variant (the tags must sit on their own lines). `detection` is the released
detection check: 1 if there is a newline-delimited answer block whose content parses as a box list.
"""

from __future__ import annotations

from collections.abc import Callable

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_NEWLINE_TAGS = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")


def tags_format(response: str) -> float:
    """Paper: 0.25 * sum over the four tags of 1[count(tag) == 1]."""
    return 0.25 * sum(response.count(tag) == 1 for tag in TAGS)


def tags_newline_format(response: str) -> float:
    """Released math verifier: the same sum over newline-delimited tags."""
    return 0.25 * sum(response.count(tag) == 1 for tag in _NEWLINE_TAGS)


def detection_format(response: str) -> float:
    """Released detection verifier: binary, answer block present and its boxes parse (released parser)."""
    from lit_triune.rewards.vtriune.released_boxes import detection_format as _released

    return _released(response)


def no_format(response: str) -> float:
    return 0.0


FORMATS: dict[str, Callable[[str], float]] = {
    "tags": tags_format,
    "tags_newline": tags_newline_format,
    "detection": detection_format,
    "none": no_format,
}


def format_reward(response: str, style: str) -> float:
    """Format reward of `style`; ValueError listing the styles if unknown."""
    if style not in FORMATS:
        raise ValueError(f"unknown format_reward {style!r}; allowed: {', '.join(FORMATS)}")
    return FORMATS[style](response)
