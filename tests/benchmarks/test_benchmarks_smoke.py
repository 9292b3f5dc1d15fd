"""The performance benchmarks run end to end and end with their `ratio:` line (tiny sizes, ~1 min in all).

They check that the scripts work, not the figures: those come from full runs (docs/performance.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RATIO = re.compile(r"^ratio: [0-9.]+$")


def _last_line(script: str, *args: str) -> str:
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing:\n{proc.stderr[-3000:]}"
    return lines[-1]


@pytest.mark.slow
def test_vs_trl_quick() -> None:
    pytest.importorskip("trl", reason="TRL is the benchmark-only extra (pip install -e .[bench])")
    assert RATIO.match(_last_line("vs_trl.py", "--quick"))


@pytest.mark.slow
def test_vs_trl_async_quick() -> None:
    pytest.importorskip("trl", reason="TRL is the benchmark-only extra (pip install -e .[bench])")
    assert RATIO.match(_last_line("vs_trl.py", "--quick", "--async"))


@pytest.mark.slow
def test_cpu_parallelism_quick() -> None:
    assert RATIO.match(_last_line("cpu_parallelism.py", "--seconds", "0.5", "--rounds", "1"))


@pytest.mark.slow
def test_frozen_vit_quick() -> None:
    assert RATIO.match(_last_line("frozen_vit.py", "--quick"))


@pytest.mark.slow
def test_update_micro_batches_quick() -> None:
    assert RATIO.match(_last_line("update_micro_batches.py", "--prompts", "6", "--group", "2", "--micro", "4",
                                  "--steps", "1", "--rounds", "1"))


@pytest.mark.slow
def test_generation_blocks_quick() -> None:
    assert RATIO.match(_last_line("generation_blocks.py", "--quick"))


@pytest.mark.slow
@pytest.mark.vllm
def test_server_batching_quick() -> None:
    pytest.importorskip("vllm")
    assert RATIO.match(_last_line("server_batching.py", "--quick"))  # exits 1 if batching changed a rank's tokens


def test_shard_reads_quick() -> None:
    assert RATIO.match(_last_line("shard_reads.py", "--per-source", "64", "--batches", "3", "--rounds", "1"))
