"""Replaces the `counting` verifier in pool workers (VerifierPool(imports=...)) for tests/rl/test_verifier_timeouts.py:
a completion whose hash is 0 mod 3 sleeps past the pool's budget (a real timeout); the others score 0 or 1
by another bit of the hash, so the scored rows of a group differ."""

from __future__ import annotations

import hashlib
import time

from lit_triune.rewards import Verdict, register_verifier


def _h(response: str) -> int:
    return int(hashlib.sha256(response.encode()).hexdigest(), 16)


def times_out(response: str) -> bool:
    return _h(response) % 3 == 0


@register_verifier("counting", replace=True)
def slow_counting(response: str, reward_model: dict, ctx: object) -> Verdict:
    if times_out(response):
        time.sleep(30)
    return Verdict(accuracy=float((_h(response) >> 8) % 2))
