"""A wall-clock budget for one verifier call, enforced with SIGALRM where that is possible.

math-verify's own timeouts use `signal.alarm` with whole seconds and are reset by each nested call,
so we switch them off and bound the *whole* verifier call instead. Signals only reach the main
thread and only between Python bytecodes, so a C-level computation (a huge integer power) can still
overrun: the `VerifierPool` parent enforces the hard limit by killing the worker.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_REFIRE_S = 0.05  # re-raise every 50 ms in case library code swallows the first exception


class VerifierTimeout(BaseException):
    """Raised inside a verifier when its budget runs out; BaseException so `except Exception` can't eat it."""


def can_interrupt() -> bool:
    """True when SIGALRM can bound a call made from here (main thread of the process)."""
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Raise `VerifierTimeout` in the body after `seconds`; a no-op when None or not interruptible."""
    if not seconds or seconds <= 0 or not can_interrupt():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise VerifierTimeout(f"verifier exceeded its {seconds:g} s budget")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds, _REFIRE_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
