"""How much two compute-bound processes gain from running at the same time on this machine.

Asynchronous rollouts (docs/rollout.md) overlap the rollout server's generation with the trainer's update:
two single-threaded torch processes at once. That pays only if the machine runs them in parallel. This
measures one process alone, then two at once (same float32 256 x 256 matmul loop, one intra-op thread),
alternating for `--rounds`.

    python benchmarks/cpu_parallelism.py [--seconds 4] [--rounds 2]

Last line: `ratio: <matmuls/s of both processes together / one process alone>` (2.0 = two full cores).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def _loop(seconds: float) -> None:
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    for _ in range(50):
        a @ b
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            a @ b
        n += 50
    print(n / (time.perf_counter() - start), flush=True)


def _run(k: int, seconds: float) -> float:
    procs = [subprocess.Popen([sys.executable, __file__, "--child", str(seconds)], stdout=subprocess.PIPE, text=True)
             for _ in range(k)]
    return sum(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        _loop(args.child)
        return
    alone, together = [], []
    for r in range(args.rounds):
        for k in (1, 2) if r % 2 == 0 else (2, 1):
            rate = _run(k, args.seconds)
            (alone if k == 1 else together).append(rate)
            print(f"round {r + 1}: {k} process(es): {rate:8.0f} matmul/s in all", flush=True)
    a, t = statistics.median(alone), statistics.median(together)
    print(f"one process alone {a:.0f} matmul/s; two at once {t:.0f} matmul/s in all ({t / 2:.0f} each)")
    print(f"ratio: {t / a:.3f}")


if __name__ == "__main__":
    main()
