"""`counting`: integer match; the answer may be digits or English number words ("twenty-one")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import NAN, Context, Verdict, failed
from lit_triune.rewards.text import answer_block, clip, parse_count
from lit_triune.rewards.verifiers._common import truth_text


def _truth(reward_model: Mapping[str, Any]) -> int:
    gt = reward_model.get("ground_truth", reward_model.get("answer"))
    if isinstance(gt, bool):
        raise ValueError(f"counting ground truth must be an integer, got {gt!r}")
    if isinstance(gt, (int, float)) and float(gt).is_integer():
        return int(gt)
    value = parse_count(truth_text(reward_model))
    if value is None:
        raise ValueError(f"counting ground truth must be an integer, got {gt!r}")
    return value


@register_verifier("counting")
class CountingVerifier(Verifier):
    def check(self, reward_model: Mapping[str, Any]) -> None:
        _truth(reward_model)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        try:
            gt = _truth(reward_model)
        except ValueError as err:
            return failed("spec", str(err))
        block = answer_block(clip(response))
        pred = parse_count(block) if block is not None else parse_count(clip(response), last=True)
        if pred is None:
            return Verdict(0.0, {"count_error": NAN}, "parse", "no count read from the answer")
        return Verdict(
            1.0 if pred == gt else 0.0, {"count_error": float(abs(pred - gt))}, extras={"pred_count": pred}
        )
