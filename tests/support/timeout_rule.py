"""Which completions the test verifier of timeout_verifier.py lets time out, and the accuracy it gives the others.
Importing this registers nothing, so a test process can ask without replacing its own `counting` verifier."""

from __future__ import annotations

import hashlib


def _h(response: str) -> int:
    return int(hashlib.sha256(response.encode()).hexdigest(), 16)


def times_out(response: str) -> bool:
    return _h(response) % 3 == 0


def accuracy(response: str) -> float:
    return float((_h(response) >> 8) % 2)
