"""SIGKILL mid-GRPO, resume from the last checkpoint: the rest of the run is the uninterrupted run's.

Both runs are `python lit_triune/main.py fit -c conf/tiny.yaml` (shrunk: 2 warm-start steps, then
GRPO, a checkpoint every step, a DataLoader worker as in the CPU default). The interrupted run is
killed with SIGKILL — no teardown, no final checkpoint — as soon as a checkpoint from the GRPO stage
exists, and resumed with `--ckpt_path`. Every per-step metric the resumed run logs, and its final
weights, must equal the uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from rl_cli import (
    REPO,
    command,
    load_checkpoint,
    read_metrics,
    run_fit,
    snapshot_config,
    step_checkpoints,
    subprocess_env,
    tiny_args,
)

MAX_STEPS = 8
WARM = 2
KILL_AFTER = 4  # kill once the checkpoint of this global step exists (GRPO stage: steps >= WARM)
NOT_COMPARED = ("time/", "train/time/", "epoch")  # wall-clock and Lightning's epoch counter


def _per_source_window(key: str) -> bool:
    """`train/<statistic>/<source>` from the SourceMetrics callback."""
    parts = key.split("/")
    return len(parts) == 3 and parts[0] == "train" and (parts[2].startswith("synthetic_") or parts[2] in ("all", "other"))


def _kill_mid_training(root: Path, args: list[str]) -> int:
    # Its own process group, so the kill takes the run's DataLoader and verifier workers with it (as a
    # crashed node would) instead of leaving orphans behind.
    proc = subprocess.Popen(command(args), cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while not any(s >= KILL_AFTER for s in step_checkpoints(root)):
            assert proc.poll() is None, f"run ended before step {KILL_AFTER}:\n{proc.stderr.read()[-4000:]}"
            assert time.monotonic() < deadline, "no mid-training checkpoint within 240 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    return max(step_checkpoints(root))


def _last_complete_checkpoint(root: Path) -> tuple[int, Path]:
    """The newest checkpoint that loads: the kill may have torn the file being written."""
    for step, path in sorted(step_checkpoints(root).items(), reverse=True):
        if load_checkpoint(path) is not None:
            return step, path
    raise AssertionError("no loadable checkpoint")


@pytest.mark.slow
def test_sigkill_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    data = tmp_path / "data"  # one generated data set for all three runs
    full_root, killed_root = tmp_path / "full", tmp_path / "killed"
    conf = snapshot_config(tmp_path)
    t0 = time.perf_counter()
    run_fit(tiny_args(full_root, max_steps=MAX_STEPS, warm_start_steps=WARM, cache_dir=data, config=conf))
    t1 = time.perf_counter()

    newest = _kill_mid_training(killed_root, tiny_args(killed_root, max_steps=MAX_STEPS, warm_start_steps=WARM,
                                                       cache_dir=data, config=conf))
    assert MAX_STEPS not in step_checkpoints(killed_root), "the run was not interrupted"
    step, ckpt_path = _last_complete_checkpoint(killed_root)
    assert WARM < step < MAX_STEPS and step >= newest - 1, (step, newest)
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt["global_step"] == step
    assert "lit_triune" in ckpt and "TriuneDataModule" in ckpt, sorted(ckpt)
    t2 = time.perf_counter()

    run_fit(tiny_args(killed_root, max_steps=MAX_STEPS, warm_start_steps=WARM, cache_dir=data, config=conf,
                      extra=[f"--ckpt_path={ckpt_path}"]))
    t3 = time.perf_counter()
    print(f"\nfull run {t1 - t0:.1f} s, killed at checkpoint step {newest} (resumed from {step}) "
          f"after {t2 - t1:.1f} s, resumed run {t3 - t2:.1f} s")

    full = read_metrics(full_root)
    resumed = read_metrics(killed_root)  # the resumed run's CSV version (the newest)
    after = range(step, MAX_STEPS)
    # SourceMetrics logs per-source figures over windows of log_every_n_steps batches; its open window is in
    # the checkpoint, so even the first window after the resume equals the uninterrupted run's.
    compared = windowed = 0
    for key, series in sorted(resumed.items()):
        if key.startswith(NOT_COMPARED):
            continue
        for s, value in series.items():
            assert s in after, (key, s)  # the resumed run logs nothing before its resume point
            assert s in full[key], (key, s)
            assert abs(value - full[key][s]) <= 1e-6, (key, s, value, full[key][s])
            compared += 1
            windowed += _per_source_window(key)
    assert windowed >= 10
    for key in ("train/reward_mean", "train/accuracy_mean", "train/format_mean", "train/loss", "train/grad_norm",
                "train/response_length_mean", "train/advantage_abs_mean", "train/iou_threshold"):
        assert sorted(resumed[key]) == list(after), (key, sorted(resumed[key]))
    assert compared >= 10 * len(after)
    # Not all GRPO steps are alike (the comparison is not vacuous).
    assert len({round(v, 6) for v in full["train/loss"].values()}) > 1

    # The final weights (and optimizer state) are the uninterrupted run's.
    a = load_checkpoint(step_checkpoints(full_root)[MAX_STEPS])
    b = load_checkpoint(step_checkpoints(killed_root)[MAX_STEPS])
    assert a["global_step"] == b["global_step"] == MAX_STEPS
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=0, atol=1e-6, msg=name)
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for pid, state in opt_a["state"].items():
            for k, v in state.items():
                torch.testing.assert_close(opt_b["state"][pid][k], v, rtol=0, atol=1e-6)
    assert a["TriuneDataModule"] == b["TriuneDataModule"]
    assert a["lit_triune"] == b["lit_triune"]
