"""A verifier for tests that reports which heavy modules its process has imported (tests/rewards/test_lean_workers.py)."""

from __future__ import annotations

import os
import sys

from lit_triune.rewards import Verdict, register_verifier


@register_verifier("probe_modules", replace=True)
def probe_modules(response: str, reward_model: dict, ctx: object) -> Verdict:
    return Verdict(accuracy=1.0, scores={
        "torch_loaded": float("torch" in sys.modules),
        "lightning_loaded": float("lightning" in sys.modules or "lightning.pytorch" in sys.modules),
        "mp_main_loaded": float("__mp_main__" in sys.modules),
        "worker_pid": float(os.getpid()),
    })
