"""scripts/position_probe.py: the token -> quadrant probe reads a position cue when there is one and not
when there is none; the script prints one line per palette and object size."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "position_probe.py"


def _probe_module():
    spec = importlib.util.spec_from_file_location("position_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quadrants(side: int = 4) -> torch.Tensor:
    return torch.tensor([(r // 2) * 2 + c // 2 for r in range(side) for c in range(side)])  # (16,)


def test_probe_reads_a_quadrant_code_and_not_noise():
    probe = _probe_module().probe_accuracy
    gen = torch.Generator().manual_seed(0)
    n, dim = 100, 8
    noise = torch.randn(n, 16, dim, generator=gen)  # (N, 16, D)
    coded = noise.clone()
    coded[..., :4] += 4 * torch.nn.functional.one_hot(_quadrants(), 4).float()  # quadrant in 4 of the D dims
    assert probe(coded) > 0.95
    assert probe(noise) < 0.40  # chance is 0.25


@pytest.mark.slow
def test_script_prints_every_palette_and_object_size(tiny_model_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--policy", str(tiny_model_path), "--images", "10",
                           "--obj", "32"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"object +32 px: [01]\.\d{3}$", ln)]
    assert len(lines) == len(_probe_module().PALETTES), proc.stdout
