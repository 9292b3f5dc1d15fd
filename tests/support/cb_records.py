"""Scripted per-sample rollout records (docs/interfaces.md) for the callback tests."""

from __future__ import annotations

import math
import random
from typing import Any

import torch

SOURCES = ["math", "det", "ground"]
EMITTED = [*SOURCES, "chart"]  # "chart" is not in the list: it lands in "other"
RESPONSES = [
    "<think>2 + 2 = 4</think><answer>4</answer>",
    "Wait, let me re-check this. <answer>5</answer>",
    "I should verify: <answer>[1, 2, 3, 4]</answer>",
    "await the result",  # no reflection: 'wait' inside a word
    "a pre-check found nothing",  # no reflection: 're-check' inside 'pre-check'
    "Let me think  AGAIN. <answer>3</answer>",
    "not done yet",
    "waiting for the yeti",  # no reflection
]


def make_record(seed: int, n: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A record dict of N samples plus the same samples as plain dicts (for reference statistics)."""
    g = random.Random(seed)
    samples = []
    for _ in range(n):
        source = g.choice(EMITTED)
        accuracy = float(g.choice([0.0, 1.0])) if source in ("math", "chart") else round(g.random(), 3)
        samples.append(
            {
                "data_source": source,
                "response": g.choice(RESPONSES),
                "reward": round(g.uniform(-1, 2), 3),
                "accuracy": accuracy,
                "format": float(g.random() < 0.8),
                "response_length": g.randint(1, 300),
                "truncated": g.random() < 0.2,
                "verifier_failure": g.random() < 0.1,
                "iou": round(g.random(), 3) if source in ("det", "ground") else math.nan,
                "map": round(g.random(), 3) if source == "det" else math.nan,
            }
        )
    record = {
        "data_source": [s["data_source"] for s in samples],
        "response": [s["response"] for s in samples],
        "reward": torch.tensor([s["reward"] for s in samples]),
        "accuracy": torch.tensor([s["accuracy"] for s in samples]),
        "format": torch.tensor([s["format"] for s in samples]),
        "response_length": torch.tensor([s["response_length"] for s in samples], dtype=torch.long),
        "truncated": torch.tensor([s["truncated"] for s in samples]),
        "verifier_failure": torch.tensor([s["verifier_failure"] for s in samples]),
        "iou": torch.tensor([s["iou"] for s in samples]),
        "map": torch.tensor([s["map"] for s in samples]),
    }
    return record, samples
