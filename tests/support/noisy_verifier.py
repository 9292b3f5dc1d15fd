"""A verifier for tests that emits a numpy warning and writes to stderr (tests/rewards/test_lean_workers.py)."""

from __future__ import annotations

import sys

import numpy as np

from lit_triune.rewards import Verdict, register_verifier


@register_verifier("noisy", replace=True)
def noisy(response: str, reward_model: dict, ctx: object) -> Verdict:
    np.log(np.zeros(1))  # RuntimeWarning: divide by zero encountered in log
    print("written to stderr", file=sys.stderr)
    return Verdict(accuracy=1.0)
