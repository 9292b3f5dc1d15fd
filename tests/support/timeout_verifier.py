"""Replaces the `counting` verifier in pool workers (VerifierPool(imports=...)) for tests/rl/test_verifier_timeouts.py:
a completion whose hash is 0 mod 3 sleeps past the pool's budget (a real timeout); the others score 0 or 1
by another bit of the hash, so the scored rows of a group differ (timeout_rule.py).

Import it only in pool workers: importing it replaces `counting` in the importing process for good (a test
process that did so scored every later in-process fit's counting answers with 30 s sleeps)."""

from __future__ import annotations

import time

from timeout_rule import accuracy, times_out

from lit_triune.rewards import Verdict, register_verifier


@register_verifier("counting", replace=True)
def slow_counting(response: str, reward_model: dict, ctx: object) -> Verdict:
    if times_out(response):
        time.sleep(30)
    return Verdict(accuracy=accuracy(response))
