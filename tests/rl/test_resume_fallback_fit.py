"""A real `python lit_triune/main.py fit -c conf/tiny.yaml` resumed with `--ckpt_path=last` after its last two
checkpoints were damaged (last.ckpt truncated, the newest step file overwritten with garbage): it resumes from
the newest readable checkpoint, says so, trains to the end, and the resumed run's stage_reports.json holds
every stage (init and after_warm_start from the first run, carried in the checkpoint; final from the second)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rl_cli import load_checkpoint, run_fit, snapshot_config, step_checkpoints, tiny_args

WARM = 2
FIRST = 5  # steps of the first run; the resumed run goes on to SECOND
SECOND = 6


@pytest.mark.slow
def test_resume_from_last_falls_back_past_damaged_checkpoints(tmp_path: Path) -> None:
    conf = snapshot_config(tmp_path)
    root = tmp_path / "run"
    run_fit(tiny_args(root, max_steps=FIRST, warm_start_steps=WARM, config=conf, stage_reports=True))
    ckpts = step_checkpoints(root)
    last = root / "checkpoints" / "last.ckpt"
    assert FIRST in ckpts and last.is_file(), sorted(ckpts)
    first_reports = sorted(root.glob("csv/version_*/stage_reports.json"))
    assert len(first_reports) == 1
    assert set(json.loads(first_reports[0].read_text())) == {"init", "after_warm_start", "final"}

    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])  # killed while writing
    ckpts[FIRST].write_bytes(b"garbage" * 100)
    good = ckpts[FIRST - 1]
    assert load_checkpoint(good)["global_step"] == FIRST - 1

    proc = run_fit(tiny_args(root, max_steps=SECOND, warm_start_steps=WARM, config=conf, stage_reports=True,
                             extra=["--ckpt_path=last"]))
    warning = next((line for line in proc.stderr.splitlines() if "resume: cannot read checkpoint" in line), None)
    assert warning is not None, proc.stderr[-4000:]
    assert str(last) in warning and str(ckpts[FIRST]) in warning and warning.endswith(str(good)), warning
    assert "truncated" in warning and "not a readable zip" in warning, warning
    assert f"Restored all states from the checkpoint at {good}" in proc.stdout + proc.stderr
    assert load_checkpoint(step_checkpoints(root)[SECOND])["global_step"] == SECOND

    # the resumed run writes to a new logger version; its stage_reports.json holds every stage
    newest = max(root.glob("csv/version_*"), key=lambda p: int(p.name.split("_")[1]))
    assert newest.name == "version_1"
    reports = json.loads((newest / "stage_reports.json").read_text())
    assert set(reports) == {"init", "after_warm_start", "final"}, sorted(reports)
    first = json.loads(first_reports[0].read_text())
    assert reports["init"] == first["init"] and reports["after_warm_start"] == first["after_warm_start"]
    assert reports["init"]["step"] == 0 and reports["after_warm_start"]["step"] == WARM
    assert reports["final"]["step"] == SECOND
