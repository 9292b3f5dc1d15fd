"""Same seed, same machine -> the same per-source figures: two runs of the CPU default (shrunk to a few
warm-start and GRPO steps) write identical stage reports, box figures included. The README's table rests
on this; a difference here means something in the run reads a clock, the environment or an unseeded RNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rl_cli import run_fit, snapshot_config, tiny_args


def _reports(root: Path) -> dict:
    return json.loads(next(root.rglob("stage_reports.json")).read_text())


@pytest.mark.slow
def test_same_seed_same_per_source_figures(tmp_path: Path) -> None:
    config = snapshot_config(tmp_path)
    data = tmp_path / "data"  # shared: the second run reads the shards the first one generated
    runs = []
    for name in ("a", "b"):
        root = tmp_path / name
        run_fit(tiny_args(root, max_steps=6, warm_start_steps=3, ckpt_every=6, stage_reports=True,
                          cache_dir=data, config=config))
        runs.append(_reports(root))
    a, b = runs
    assert set(a) == {"init", "after_warm_start", "final"}
    assert a == b  # exact: every stage, source and figure
    boxes = [s for s in a["final"]["sources"].values() if "box_count" in s]
    assert boxes, "no box source in the default: the box figures went untested"
