"""Synthetic V-Triune tasks rendered with PIL: exact ground truth, deterministic by seed.

`generate("counting", n=100, seed=0, difficulty="easy")` returns Orsta-format samples whose
`extra_info["sft_target"]` is the supervised target text for a warm-start stage.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from lit_triune.data.synthetic import perception, reasoning
from lit_triune.data.synthetic.common import (
    DIFFICULTIES,
    PROMPT_LAYOUTS,
    Drawn,
    check_difficulty,
    check_layout,
    to_sample,
)

TASKS: dict[str, Callable[[random.Random, str, int], Drawn]] = {
    "counting": perception.counting,
    "detection": perception.detection,
    "grounding": perception.grounding,
    "ocr": perception.ocr,
    "math": reasoning.math,
    "chart": reasoning.chart,
    "puzzle": reasoning.puzzle,
}

__all__ = ["DIFFICULTIES", "GENERATOR_VERSION", "PROMPT_LAYOUTS", "TASKS", "check_layout", "generate", "iter_samples",
           "parse_counts"]

GENERATOR_VERSION = 5
"""Bumped whenever a task draws differently, so cached shards (`data.cache_dir`) are regenerated, not reused.
2: detection easy has 1-3 boxes in reading order; easy box tasks tint their quadrants. 3: easy OCR words of
different widths (caches written by an intermediate 2 hold the old words). 4: easy OCR words and easy math
expressions in bold (3 px stroke). 5: easy box tasks on hue-tinted quadrants with 32 px objects (the tint
stays visible around them); easy counting 1-5 squares, easy chart 1-4 bars (1-3 and 1-3 saturated in the
warm-start, leaving RL nothing to add)."""


def iter_samples(task: str, n: int, *, seed: int = 0, difficulty: str = "easy", image_size: int = 112,
                 layout: str = "image_first") -> Iterator[dict[str, Any]]:
    """Sample i depends only on (task, seed, difficulty, i, image_size, layout), so any slice regenerates
    alike; `layout` (PROMPT_LAYOUTS) places the image before or after the question and changes nothing else."""
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; available: {sorted(TASKS)}")
    check_difficulty(difficulty)
    check_layout(layout)
    if image_size < 56:
        raise ValueError(f"image_size must be >= 56 px, got {image_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for i in range(n):
        rng = random.Random(f"{task}/{difficulty}/{seed}/{i}")
        yield to_sample(task, i, seed, difficulty, TASKS[task](rng, difficulty, image_size), layout)


def generate(task: str, n: int, *, seed: int = 0, difficulty: str = "easy", image_size: int = 112,
             layout: str = "image_first") -> list[dict[str, Any]]:
    return list(iter_samples(task, n, seed=seed, difficulty=difficulty, image_size=image_size, layout=layout))


def parse_counts(values: list[str], flag: str) -> dict[str, int]:
    """Command-line `TASK=N` arguments as {task: N} (a task given twice: the sum); an unknown task or an N that is
    not a positive integer is a SystemExit naming the argument."""
    out: dict[str, int] = {}
    for item in values:
        task, sep, n = item.partition("=")
        if not sep or not task or not n.isdigit() or int(n) < 1:
            raise SystemExit(f"{flag} takes TASK=N with a positive integer N, got {item!r}")
        if task not in TASKS:
            raise SystemExit(f"{flag}: unknown task {task!r} in {item!r} (tasks: {', '.join(TASKS)})")
        out[task] = out.get(task, 0) + int(n)
    return out
