"""Registry, prepare-time validation, and a grep that the package never evaluates model output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lit_triune.rewards as rewards
from lit_triune.rewards import (
    Verdict,
    available_verifiers,
    get_verifier,
    register_verifier,
    score,
    validate_reward_model,
)


def test_builtins_are_registered():
    assert {"mathverify", "detection", "grounding", "counting", "ocr"} <= set(available_verifiers())


def test_unknown_verifier_error_lists_available_names():
    with pytest.raises(KeyError, match="available verifiers: .*mathverify"):
        get_verifier("no-such-verifier")


def test_register_a_verifier_without_touching_the_loop():
    @register_verifier("test_length", replace=True)
    def length(response, reward_model, ctx):
        return Verdict(accuracy=float(len(response) == reward_model["ground_truth"]), scores={"iou": 0.25})

    out = score("abc", {"verifier": "test_length", "ground_truth": 3, "format_ratio": 0.0})
    assert (out["reward"], out["iou"]) == (1.0, 0.25)
    with pytest.raises(ValueError, match="already registered"):
        register_verifier("test_length")(length)


@pytest.mark.parametrize(
    ("rm", "match"),
    [
        ({"verifier": "nope"}, "unknown verifier 'nope'"),
        ({"verifier": 3}, "must be a string"),
        ({"verifier": "detection", "ground_truth": "nothing"}, "no parseable box"),
        (
            {
                "verifier": "detection",
                "ground_truth": "[0,0,1,1]",
                "verifier_parm": {"det_reward_ratio": {"map": 0.0}},
            },
            "weight 0",
        ),
        ({"verifier": "ocr", "ground_truth": 5}, "string"),
        ({"verifier": "mathverify", "ground_truth": "1", "accuracy_ratio": "high"}, "finite number"),
        ({"verifier": "mathverify", "ground_truth": "1", "verifier_parm": [1]}, "dict or None"),
    ],
)
def test_validate_reward_model_says_what_is_wrong(rm, match):
    with pytest.raises(ValueError, match=match):
        validate_reward_model(rm)


def test_validate_accepts_orsta_rows():
    validate_reward_model({"verifier": "mathverify", "ground_truth": "\\boxed{4}", "accuracy_ratio": 1.0, "format_ratio": 0.0,
                           "verifier_parm": {"det_verifier_normalized": None, "det_reward_ratio": {"map": None}}})  # fmt: skip
    validate_reward_model({"verifier": "detection", "ground_truth": "<answer>\n[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}]\n</answer>",
                           "verifier_parm": {"det_verifier_normalized": True, "det_reward_ratio": {"iou_max_label_first": 1.0}}})  # fmt: skip


def test_package_never_evaluates_model_output():
    root = Path(rewards.__file__).parent
    forbidden = re.compile(
        r"\b(eval|exec|literal_eval)\s*\(|pickle\.loads|yaml\.load\(|marshal\.loads|__import__\("
    )
    offenders = [
        f"{path.relative_to(root.parent)}:{n}: {line.strip()}"
        for path in [*root.rglob("*.py"), root.parent / "boxes.py"]  # the box reader is shared with data
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []


def test_entry_point_verifiers_are_loaded(monkeypatch):
    import lit_triune.rewards.registry as registry

    class FakeEntryPoint:
        name = "test_from_entry_point"

        def load(self):
            return lambda response, reward_model, ctx: 0.75

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(
        registry,
        "entry_points",
        lambda group: [FakeEntryPoint()] if group == registry.ENTRY_POINT_GROUP else [],
    )
    assert "test_from_entry_point" in available_verifiers()
    assert score("x", {"verifier": "test_from_entry_point", "format_ratio": 0.0})["reward"] == 0.75
    registry._REGISTRY.pop("test_from_entry_point")  # leave the registry as other tests expect it
