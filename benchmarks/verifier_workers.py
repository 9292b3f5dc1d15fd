"""Verifier workers inside a real `fit` of the CPU default: their memory, and how fast a killed one is back.

Usage: python benchmarks/verifier_workers.py [--kills 3] [--warm-start-steps 150] [--timeout 600]

Starts `python lit_triune/main.py fit -c conf/tiny.yaml` (logs under a temporary directory), waits for the
GRPO stage (the pool scores there), then from outside the run:
  * prints each verifier worker's RSS (and the forkserver's and the trainer's, for scale) and whether
    libtorch is mapped into it;
  * SIGKILLs one worker `--kills` times and prints how long until its replacement is up: a new child
    of the forkserver that has finished starting (idle: sleeping, CPU time unchanged for 50 ms);
  * checks the trainer kept training (two more step checkpoints), then stops the run.
Last lines: `worker RSS max: <MB>` and `replacement max: <s>` (the issue's goals: <= 200 MB, <= 1 s).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # state ppid pgrp session ... utime(11) stime(12)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st and int(st[1]) == pid and st[0] != "Z":
                out.append(int(entry.name))
    return sorted(out)


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    return float("nan")


def _has_libtorch(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    return False


def _idle(pid: int) -> bool:
    """Done starting: sleeping, and no CPU time spent over 50 ms."""
    a = _stat(pid)
    time.sleep(0.05)
    b = _stat(pid)
    return bool(a and b and b[0] == "S" and a[11:13] == b[11:13])


def _checkpoint_steps(root: Path) -> list[int]:
    steps = []
    for p in root.rglob("step=*.ckpt"):
        stem = p.stem.split("=")[1].split("-")[0]
        if stem.isdigit():
            steps.append(int(stem))
    return sorted(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--warm-start-steps", type=int, default=150, help="conf/tiny.yaml's value by default")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for the GRPO stage")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="verifier-workers-"))
    warm = args.warm_start_steps
    cmd = [sys.executable, str(REPO / "lit_triune" / "main.py"), "fit", "-c", str(REPO / "conf" / "tiny.yaml"),
           f"--trainer.default_root_dir={root}", f"--trainer.logger.init_args.save_dir={root}",
           f"--model.warm_start_steps={warm}", f"--trainer.max_steps={warm + 1000}",
           f"--trainer.callbacks.init_args.dirpath={root / 'ckpt'}", "--trainer.callbacks.init_args.filename={step}",
           "--trainer.callbacks.init_args.every_n_train_steps=1", "--trainer.callbacks.init_args.save_top_k=-1",
           "--model.stage_reports=false"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "TOKENIZERS_PARALLELISM": "false"}
    print("run:", " ".join(cmd[1:]), flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + args.timeout
        while not [s for s in _checkpoint_steps(root) if s > warm]:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the run did not reach the GRPO stage (exit {proc.poll()}, logs in {root})")
            time.sleep(0.2)
        server = next(p for p in _children(proc.pid) if "forkserver" in _cmdline(p))
        workers = _children(server)
        print(f"trainer pid {proc.pid}: RSS {_rss_mb(proc.pid):.0f} MB; forkserver RSS {_rss_mb(server):.0f} MB")
        rss = []
        for pid in workers:
            rss.append(_rss_mb(pid))
            print(f"verifier worker {pid}: RSS {rss[-1]:.0f} MB, libtorch mapped: {_has_libtorch(pid)}")
        times = []
        for _ in range(args.kills):
            victim = _children(server)[0]
            os.kill(victim, signal.SIGKILL)
            t0 = time.perf_counter()
            while True:
                fresh = [p for p in _children(server) if p != victim and p not in workers]
                if fresh and _idle(fresh[0]):
                    break
                if time.perf_counter() - t0 > 60:
                    raise SystemExit("no replacement worker within 60 s")
                time.sleep(0.005)
            times.append(time.perf_counter() - t0)  # an upper bound: includes the 50 ms idle check
            workers = _children(server)
            rss.append(_rss_mb(fresh[0]))
            print(f"killed {victim}: replacement {fresh[0]} up in {times[-1]:.3f} s, RSS {rss[-1]:.0f} MB, "
                  f"libtorch mapped: {_has_libtorch(fresh[0])}", flush=True)
        before, t0 = max(_checkpoint_steps(root)), time.perf_counter()
        while max(_checkpoint_steps(root)) < before + 2 and time.perf_counter() - t0 < 300:
            time.sleep(0.1)
        print(f"training went on: step {before} -> {max(_checkpoint_steps(root))} "
              f"{time.perf_counter() - t0:.1f} s after the kills")
        print(f"worker RSS max: {max(rss):.0f} MB")
        print(f"replacement max: {max(times):.3f} s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


if __name__ == "__main__":
    main()
