"""`counting`: integer match; the answer is ONE number, digits or one English number phrase ("twenty-one").

The answer is the `<answer>` block, else the whole completion; either way it must hold exactly one
number (`text.read_count`): "3 or 4", "three two", "nine dozen", two blocks or an overflow are
`parse` failures, so a policy cannot be paid for hedging or for assembling the count from pieces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import NAN, Context, Verdict, failed
from lit_triune.rewards.text import AnswerError, clip, read_count, single_answer_block
from lit_triune.rewards.verifiers._common import truth_text


def _truth(reward_model: Mapping[str, Any]) -> int:
    gt = reward_model.get("ground_truth", reward_model.get("answer"))
    if isinstance(gt, bool):
        raise ValueError(f"counting ground truth must be an integer, got {gt!r}")
    if isinstance(gt, int) or (isinstance(gt, float) and gt.is_integer()):
        return int(gt)
    try:
        return read_count(truth_text(reward_model))
    except AnswerError as err:
        raise ValueError(f"counting ground truth must be one integer, got {gt!r:.200}: {err}") from None


@register_verifier("counting")
class CountingVerifier(Verifier):
    def check(self, reward_model: Mapping[str, Any]) -> None:
        _truth(reward_model)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        try:
            gt = _truth(reward_model)
        except ValueError as err:
            return failed("spec", str(err))
        try:
            block = single_answer_block(clip(response))
            pred = read_count(block if block is not None else response.strip())
        except AnswerError as err:
            return Verdict(0.0, {"count_error": NAN}, "parse", str(err))
        return Verdict(
            1.0 if pred == gt else 0.0, {"count_error": float(abs(pred - gt))}, extras={"pred_count": pred}
        )
