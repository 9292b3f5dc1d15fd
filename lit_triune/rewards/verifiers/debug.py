"""Diagnostic verifiers for exercising the pool: `debug_sleep` and `debug_crash`. Not for training data.

`debug_sleep` sleeps `verifier_parm["seconds"]` and returns `verifier_parm.get("accuracy", 1.0)`;
`debug_crash` kills its worker process (in-process it raises instead, so it can't take a trainer down).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Mapping
from typing import Any

from lit_triune.rewards.registry import register_verifier
from lit_triune.rewards.result import Context, Verdict
from lit_triune.rewards.verifiers._common import parm


@register_verifier("debug_sleep")
def debug_sleep(response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
    p = parm(reward_model)
    time.sleep(float(p.get("seconds", 0.1)))
    return Verdict(float(p.get("accuracy", 1.0)))


@register_verifier("debug_crash")
def debug_crash(response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
    if multiprocessing.parent_process() is not None:
        os._exit(13)
    raise RuntimeError("debug_crash called in-process")
