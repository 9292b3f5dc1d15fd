"""Sample schema: the reward spec checks of issue 17 item 7 (ratios, OCR list ground truth)."""

from __future__ import annotations

import math

import pytest

from lit_triune.data.schema import SampleError, validate_sample


def _sample(**reward_model) -> dict:
    rm = {"answer": None, "ground_truth": "stop", "accuracy_ratio": 1.0, "format_ratio": 0.1,
          "verifier": "ocr", "verifier_parm": None, **reward_model}  # fmt: skip
    return {"data_source": "t", "images": [], "prompt": [{"role": "user", "content": "read"}], "ability": "ocr",
            "reward_model": rm, "extra_info": {"id": 1, "image_path": None}}  # fmt: skip


def test_ocr_list_ground_truth_is_accepted():
    validate_sample(_sample(ground_truth=["stop", "STOP sign"]))


@pytest.mark.parametrize(
    ("reward_model", "field"),
    [({"ground_truth": []}, "ground_truth"), ({"ground_truth": ["stop", ""]}, "ground_truth"),
     ({"ground_truth": ["stop", 3]}, "ground_truth"),
     ({"verifier": "counting", "ground_truth": ["3"]}, "ground_truth"),
     ({"format_ratio": -3}, "format_ratio"), ({"accuracy_ratio": math.inf}, "accuracy_ratio")],
)  # fmt: skip
def test_bad_reward_specs_name_the_field(reward_model, field):
    with pytest.raises(SampleError, match=field):
        validate_sample(_sample(**reward_model))
