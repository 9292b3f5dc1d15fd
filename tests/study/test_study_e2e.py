"""The runner end to end on a shortened conf/tiny.yaml: one seed, two variants, a few steps; then resuming
the same command skips everything. Slow (three training subprocesses and an export)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lit_triune.study import configs, layout

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "conf" / "tiny.yaml"


def _shortened(tmp_path: Path) -> list[str]:
    """--set overrides for whatever tasks the config has: a few samples each, short answers, no worker pools."""
    cfg = configs.load(TINY)
    sets = [f"data.synthetic.{t}=32" for t in cfg["data"]["synthetic"]]
    sets += [f"data.val_synthetic.{t}=4" for t in cfg["data"].get("val_synthetic") or {}]
    sets += ["model.max_new_tokens=8", "model.reward_workers=0", "data.num_workers=0", "trainer.log_every_n_steps=2",
             f"data.cache_dir={tmp_path / 'data'}"]
    return [a for s in sets for a in ("--set", s)]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # four subprocesses, each paying its start-up: minutes on a loaded 2-core machine
def test_study_runs_resumes_and_writes_table_and_figures(tmp_path: Path) -> None:
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "lit_triune.study", "run", "--config", str(TINY), "--seeds", "0",
           "--variants", "recipe", "iou_fixed_0.5", "--out", str(out), "--warm-start-steps", "3", "--rl-steps", "4",
           "--val-every", "2", "--jobs", "1", *_shortened(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert layout.policy_ready(out, 0)
    for variant in ("recipe", "iou_fixed_0.5"):
        run = layout.run_dir(out, variant, 0)
        assert layout.is_finished(run)
        reports = layout.read_stage_reports(run)
        assert set(reports["init"]["sources"]) == set(reports["final"]["sources"])  # validation on every source
    results = (out / "results.md").read_text()
    assert "| recipe | 0 |" in results and "| iou_fixed_0.5 | 0 |" in results
    assert (out / "figures" / "val_accuracy.png").stat().st_size > 10000
    from lit_triune.study.scalars import load_scalars

    fixed = load_scalars(layout.log_dir(layout.run_dir(out, "iou_fixed_0.5", 0)))["train/iou_threshold"]
    assert set(fixed.values()) == {0.5}
    recipe = load_scalars(layout.log_dir(layout.run_dir(out, "recipe", 0)))["train/iou_threshold"]
    assert recipe[0] == pytest.approx(0.85) and max(recipe.values()) == pytest.approx(0.99)  # from RL step 0
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("finished earlier, skipped") == 3, again.stdout[-2000:]
