"""`mathverify`: math-verify parse + verify of the final answer, 0/1.

The answer is read from the last `<answer>` block (any LaTeX or plain expression in it), else from
an anchored answer in the whole completion (`\\boxed{}` first, then "the answer is $...$"), so a
number in the reasoning is never taken for the answer. math-verify's own SIGALRM timeouts are off
(they need whole seconds, the main thread, and reset each other); the caller's budget bounds the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import lit_triune.rewards._mathlog  # noqa: F401
from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import Context, Verdict, failed
from lit_triune.rewards.text import answer_block, clip

MAX_ANSWER_CHARS = 10_000  # math answers are short; longer candidates are read from their tail


@lru_cache(maxsize=1)
def _configs() -> tuple[list[Any], list[Any]]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    in_block = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    anchored = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    return in_block, anchored


def _truth(reward_model: Mapping[str, Any]) -> str:
    gt = reward_model.get("ground_truth", reward_model.get("answer"))
    if isinstance(gt, bool) or gt is None or not isinstance(gt, (str, int, float)):
        raise ValueError(f"mathverify ground truth must be a string or number, got {gt!r}")
    return str(gt)


@register_verifier("mathverify")
class MathVerifier(Verifier):
    def check(self, reward_model: Mapping[str, Any]) -> None:
        _truth(reward_model)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        from math_verify import parse, verify

        try:
            truth = _truth(reward_model)
        except ValueError as err:
            return failed("spec", str(err))
        gold = parse(clip(truth, MAX_ANSWER_CHARS), parsing_timeout=None)
        if not gold:
            return failed("spec", f"ground truth is not parseable by math-verify: {truth[:200]!r}")
        in_block, anchored = _configs()
        block = answer_block(clip(response))
        if block is not None:
            pred = parse(clip(block, MAX_ANSWER_CHARS), extraction_config=in_block, parsing_timeout=None)
        else:
            pred = parse(clip(response, MAX_ANSWER_CHARS), extraction_config=anchored, parsing_timeout=None)
        if not pred:
            return Verdict(0.0, failure="parse", detail="no answer read from the completion")
        return Verdict(1.0 if verify(gold, pred, timeout_seconds=None) else 0.0)
