"""`validate --ckpt_path` of a trained run reproduces the run's own final per-source figures: the checkpoint
restores the policy and the IoU threshold, and the validation loop (greedy, SourceMetrics) scores as the
stage report does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rl_cli import read_metrics, run_fit, step_checkpoints, tiny_args


@pytest.mark.slow
def test_validate_from_checkpoint_equals_the_final_stage_report(tmp_path: Path) -> None:
    root = tmp_path / "fit"
    # enough warm-start steps at the default's rates for some answers to take the format (3 were not:
    # every figure compared was 0, so the test could not tell a restored policy from a blank one)
    steps = 42
    run_fit(tiny_args(root, max_steps=steps, warm_start_steps=40, ckpt_every=steps, stage_reports=True,
                      num_workers=0))
    report = json.loads(next(root.rglob("stage_reports.json")).read_text())["final"]
    assert report["step"] == steps
    ckpt = step_checkpoints(root)[steps]

    val_root = tmp_path / "validate"
    args = tiny_args(val_root, max_steps=steps, num_workers=0, cache_dir=root / "data")
    args[0] = "validate"
    run_fit([*args, f"--ckpt_path={ckpt}"])
    metrics = read_metrics(val_root)
    compared = 0
    for source, figures in report["sources"].items():
        for name in ("accuracy", "format", "reward"):
            logged = metrics[f"val/{name}/{source}"]
            assert len(logged) == 1
            assert abs(next(iter(logged.values())) - figures[name]) <= 1e-6, (name, source)
            compared += 1
    assert compared == 3 * len(report["sources"]) >= 12  # every source of the default x 3 figures
    assert any(f["format"] > 0 for f in report["sources"].values())  # a trained policy, not a blank one
