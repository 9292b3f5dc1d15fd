"""The released `MathVerifyVerifier`: lowercases both sides and reads only anchored answers of the
response (`\\boxed{}` first, then phrases like "the final answer is $...$"); 0 when the gold fails to parse.

math-verify's own signal timeouts are switched off (None): the caller bounds the whole call.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import lit_triune.rewards._mathlog  # noqa: F401


@lru_cache(maxsize=1)
def _response_config() -> list[Any]:
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig

    normalization = NormalizationConfig(
        nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
    )
    return [
        LatexExtractionConfig(
            normalization_config=normalization, boxed_match_priority=0, try_extract_without_anchor=False
        )
    ]


def verify_format(response: str) -> float:
    """0.25 per newline-delimited tag occurring exactly once."""
    from lit_triune.rewards.format import tags_newline_format

    return tags_newline_format(response)


def verify_accuracy(response: str, solution: Any) -> tuple[float, str | None]:
    """(1.0 or 0.0 exactly as the released verifier, our failure label); raises where it raises."""
    from math_verify import parse, verify

    response, solution = response.lower(), solution.lower()
    gold = parse(solution, extraction_mode="first_match", parsing_timeout=None)
    if len(gold) == 0:
        return 0.0, "spec"
    answer = parse(
        response, extraction_config=_response_config(), extraction_mode="first_match", parsing_timeout=None
    )
    failure = None if answer else "parse"
    try:
        return float(verify(gold, answer, timeout_seconds=None)), failure
    except Exception:
        return 0.0, failure
