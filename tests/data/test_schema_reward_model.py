"""Sample schema: the reward spec checks of issue 17 item 7 (ratios, OCR list ground truth, debug verifiers)."""

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


@pytest.mark.parametrize("name", ["debug_sleep", "debug_crash"])
def test_debug_verifiers_are_refused_unless_opted_in(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lit_triune.rewards import registry

    sample = _sample(verifier=name, ground_truth="1", verifier_parm={"seconds": 1e9})
    for debug_name in ("debug_sleep", "debug_crash"):  # this session may have opted in (tests/rewards/test_pool.py)
        monkeypatch.delitem(registry._REGISTRY, debug_name, raising=False)
    with pytest.raises(SampleError, match="opt-in"):
        validate_sample(sample)
    import lit_triune.rewards.verifiers.debug as debug  # the opt-in (a no-op if already imported: put it back by hand)

    monkeypatch.setitem(registry._REGISTRY, name, registry._as_verifier(name, getattr(debug, name)))
    validate_sample(sample)
