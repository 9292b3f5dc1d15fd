"""What a verifier hands back, and the fixed keys every scored sample carries.

A verifier returns a `Verdict`; `score()` turns it into the flat dict of the public API. Keeping the
standard sub-score keys present on every result (NaN where they do not apply) lets the trainer stack
a mixed batch into `(N,)` tensors without knowing which verifier scored which row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

NAN = math.nan

FAILURES = ("timeout", "crash", "parse", "spec")
"""`failure` values: `timeout` (time budget hit), `crash` (verifier raised / worker died),
`parse` (no answer could be read from the response), `spec` (the sample's reward spec is unusable)."""

STANDARD_SUBSCORES = ("iou", "precision", "recall", "map", "map50", "map75")
"""Sub-scores present on every result; NaN when the verifier does not produce them."""


@dataclass
class Verdict:
    """Accuracy reward plus named float sub-scores; `extras` holds non-float payload (e.g. boxes)."""

    accuracy: float
    scores: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    detail: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Per-call facts a verifier may need; never read from globals or the environment."""

    image_size: tuple[int, int] | None = None  # (height, width) of the image as the model saw it
    iou_threshold: float | None = None
    compat: str | None = None


def failed(failure: str, detail: str) -> Verdict:
    """A zero-accuracy verdict that says why."""
    return Verdict(accuracy=0.0, failure=failure, detail=detail)


def make_result(
    verifier: str,
    reward: float,
    accuracy: float,
    fmt: float,
    failure: str | None = None,
    detail: str | None = None,
    scores: dict[str, float] | None = None,
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The public result dict: fixed keys first, then the verifier's own sub-scores and extras."""
    out: dict[str, Any] = {
        "reward": float(reward),
        "accuracy": float(accuracy),
        "format": float(fmt),
        "failure": failure,
        "detail": detail,
        "verifier": verifier,
    }
    out.update({k: NAN for k in STANDARD_SUBSCORES})
    for key, value in (scores or {}).items():
        out[key] = float(value)
    out.update(extras or {})
    return out
