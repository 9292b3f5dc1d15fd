"""SIGKILL of the trainer process alone (as a scheduler's OOM kill does) leaves nothing of the run running.

The resume test kills the whole process group, which hides orphans; here only the trainer's pid gets
the signal. Its helpers must follow: the DataLoader worker and the verifier forkserver by their
parent-death signal, the verifier workers with the forkserver, the resource tracker when the last
holder of its pipe is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rl_cli import REPO, command, step_checkpoints, subprocess_env, tiny_args


def _session(sid: int) -> dict[int, str]:
    """Live (non-zombie) processes of session `sid`: pid -> command line."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(entry.name)] = cmdline
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigkill_of_the_trainer_alone_leaves_no_process(tmp_path):
    args = tiny_args(tmp_path, max_steps=200, warm_start_steps=2)
    proc = subprocess.Popen(command(args), cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not any(s >= 3 for s in step_checkpoints(tmp_path)):  # in the GRPO stage: every helper is up
            assert proc.poll() is None, f"run ended early:\n{proc.stderr.read()[-4000:]}"
            assert time.monotonic() < deadline, "no GRPO-stage checkpoint within 300 s"
            time.sleep(0.05)
        helpers = {p: c for p, c in _session(proc.pid).items() if p != proc.pid}
        assert any("forkserver" in c for c in helpers.values()), helpers  # the verifier pool's
        assert len(helpers) >= 4, helpers  # + verifier worker, DataLoader worker, resource tracker
        os.kill(proc.pid, signal.SIGKILL)  # the trainer only, not its process group
        proc.wait()
        time.sleep(10)
        left = _session(proc.pid)
        assert not left, f"still running 10 s after the trainer's SIGKILL: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait()
