from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cb_records import SOURCES

REPO = Path(__file__).parents[2]
SUPPORT = REPO / "tests" / "support"
STATS = ["reward", "accuracy", "response_length_wrong", "reflection_ratio", "accuracy_reflection", "iou", "map",
         "iou@0.5", "truncation_ratio", "verifier_failure_ratio", "samples"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_ddp_metrics_equal_those_of_the_gathered_data(tmp_path: Path, reference: Any) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "LOCAL_RANK", "RANK")
    }
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "callbacks"), str(SUPPORT)]))
    proc = subprocess.run(
        [sys.executable, str(SUPPORT / "ddp_source_metrics_run.py"), str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # all ranks log the same numbers
    assert ranks[0]["history"] == ranks[1]["history"]
    history = ranks[0]["history"]

    # training windows of 2 batches (log_every_n_steps=2): steps 1 and 3
    assert [s for s, _ in history["train/reward/all"]] == [1, 3]
    for step, batches in ((1, slice(0, 2)), (3, slice(2, 4))):
        gathered = [s for r in ranks for batch in r["train_samples"][batches] for s in batch]
        _check(history, "train", step, gathered, reference)
    # validation epoch
    gathered = [s for r in ranks for s in r["val_samples"]]
    assert len(gathered) == 2 * 7 + 2 * 10
    (val_step,) = {s for s, _ in history["val/reward/all"]}
    _check(history, "val", val_step, gathered, reference)
    # one state tensor: one sync (a size gather and a data gather) however many sources and statistics
    assert [r["collectives_per_compute"] for r in ranks] == [2, 2]

    # resume from a mid-window checkpoint (step 2 of a 4-batch window): the checkpoint holds the window
    # summed over both ranks, rank 0 restores it, and the resumed run logs what the uninterrupted one does
    for r in ranks:
        full, resumed = r["resume"]["full"], r["resume"]["resumed"]
        assert [s for s, _ in full["train/reward/all"]] == [3, 5]
        assert set(resumed) == set(full)
        for key, points in full.items():
            assert [s for s, _ in resumed[key]] == [s for s, _ in points], key
            assert [v for _, v in resumed[key]] == pytest.approx(
                [v for _, v in points], rel=1e-6, abs=1e-6
            ), key


def _check(
    history: dict[str, Any], prefix: str, step: int, samples: list[dict[str, Any]], reference: Any
) -> None:
    checked = 0
    for stat in STATS:
        for row in [*SOURCES, "other", "all"]:
            expected = reference(samples, stat, row, SOURCES)
            logged = dict(history.get(f"{prefix}/{stat}/{row}", []))
            if math.isnan(expected):
                assert step not in logged, (prefix, stat, row)
            else:
                assert logged[step] == pytest.approx(expected, rel=1e-5, abs=1e-5), (prefix, stat, row, step)
                checked += 1
    assert checked > 30
