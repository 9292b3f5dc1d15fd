"""Hostile completions never raise and never exceed the pool's timeout."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lit_triune.rewards import VerifierPool, score

MATH = {"verifier": "mathverify", "ground_truth": "\\boxed{4}"}
DET = {
    "verifier": "detection",
    "ground_truth": "<answer>\n[{'bbox_2d': [0, 0, 500, 500], 'label': 'dog'}]\n</answer>",
    "verifier_parm": {
        "det_verifier_normalized": True,
        "det_reward_ratio": {"iou_max_label_first": 1.0, "map": 1.0},
    },
}
TIMEOUT_S = 2.0

CORPUS = [
    "<answer>\\boxed{10^{10^{10^{10^{10}}}}}</answer>",
    "\\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}",
    "\\boxed{" + "\\frac{1}{" * 2000 + "2" + "}" * 2000 + "}",
    "<answer>" + "9" * 100_000 + "</answer>",
    "<answer>\n["
    + ", ".join("{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}" for _ in range(100_000))
    + "]\n</answer>",
    "<answer>\n[{'bbox_2d': [NaN, 1e999, -Infinity, 4], 'label': 'dog'}]\n</answer>",
    "<answer>\n[{'bbox_2d': [1, 2, 3, " + "9" * 5000 + "], 'label': 'dog'}]\n</answer>",
    "<answer>\n[{'bbox_2d': [0, 0, 10, 10], 'label': 'do",
    "<answer>\n" + "[" * 10_000 + "\n</answer>",
    "<answer>🐶🐱 ᚠᛇᚻ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202e\u0000 \\boxed{４}</answer>",
    "<answer>" * 20_000 + "</answer>" * 3,
    "",
]


def test_hostile_corpus_through_the_pool():
    rms, responses = [], []
    for text in CORPUS:
        for rm in (MATH, DET):
            responses.append(text)
            rms.append(rm)
    with VerifierPool(num_workers=2, timeout_s=TIMEOUT_S) as pool:
        assert pool.wait_ready(60)
        futures = [pool.submit(r, rm, image_size=(280, 280)) for r, rm in zip(responses, rms, strict=True)]
        # every sample comes back: result() raises if one is still missing after (samples / workers) hard
        # timeouts plus a margin (a bound on waiting, not a speed figure)
        bound = len(responses) / 2 * TIMEOUT_S + 60
        for f in futures:
            out = f.result(timeout=bound)
            assert 0.0 <= out["reward"] <= 2.0
            assert out["failure"] in (None, "timeout", "parse"), out  # never a verifier crash


@pytest.mark.parametrize("compat", [None, "vtriune"])
def test_hostile_corpus_in_process_never_raises(compat):
    for text in CORPUS:
        if "10^{10^" in text or "(" * 100 in text or "\\frac{1}{" * 100 in text:
            continue  # math-heavy ones are bounded by the pool test above
        for rm in (MATH, DET):
            out = score(text, rm, image_size=(280, 280), compat=compat)
            assert isinstance(out["reward"], float)


@settings(max_examples=60, deadline=None)
@given(
    st.text(max_size=400),
    st.sampled_from(["detection", "grounding", "counting", "ocr"]),
    st.sampled_from([None, "vtriune"]),
)
def test_random_text_never_raises(text, verifier, compat):
    rm = (
        dict(DET)
        if verifier == "detection"
        else {"verifier": verifier, "ground_truth": "[0, 0, 10, 10]" if verifier == "grounding" else "3"}
    )
    for response in (
        text,
        f"<answer>{text}</answer>",
        f"<answer>\n[{{'bbox_2d': [{text}], 'label': '{text}'}}]\n</answer>",
    ):
        out = score(response, rm, image_size=(100, 100), compat=compat)
        assert set(out) >= {"reward", "accuracy", "format", "failure"}


def test_non_string_inputs_do_not_raise():
    for response in (None, 42, b"bytes"):
        assert isinstance(score(response, MATH)["reward"], float)  # type: ignore[arg-type]
    assert score("x", None)["failure"] == "spec"  # type: ignore[arg-type]
    assert score("x", MATH, image_size=(0, 5))["failure"] == "spec"
    assert score("x", MATH, iou_threshold=1.5)["failure"] == "spec"


LATEX_BITS = [
    "\\boxed{",
    "}",
    "{",
    "^",
    "10",
    "\\frac{",
    "(",
    ")",
    "x",
    "\\sqrt{",
    "!",
    "9" * 30,
    "\\infty",
    "\\cdot",
    "e",
    "-",
    "<answer>",
    "</answer>",
]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(LATEX_BITS), max_size=60), st.sampled_from([None, "vtriune"]))
def test_random_latex_through_the_pool_stays_within_the_timeout(math_pool, bits, compat):
    response = "".join(bits)
    # one sample at a time: it comes back within its hard timeout plus a margin (result() raises otherwise)
    out = math_pool.submit(response, MATH, compat=compat).result(timeout=TIMEOUT_S + 30)
    assert out["failure"] in (None, "timeout", "parse"), out  # never a verifier crash


@pytest.fixture(scope="module")
def math_pool():
    with VerifierPool(num_workers=1, timeout_s=TIMEOUT_S) as pool:
        assert pool.wait_ready(60)
        yield pool
