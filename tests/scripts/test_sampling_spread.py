"""scripts/sampling_spread.py prints, per task, the figures that say whether GRPO has reward to climb."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(ocr|grounding) +accuracy@T=1 [01]\.\d\d  pass@2 [01]\.\d\d  groups with reward spread [01]\.\d\d  "
                  r"distinct answers per group \d\.\d$")


@pytest.mark.slow
def test_prints_one_line_per_task_on_a_policy_directory(tiny_model_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sampling_spread.py"), str(tiny_model_path),
                           "--tasks", "ocr", "grounding", "--prompts", "2", "--group", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 2 and all(LINE.match(ln) for ln in lines), proc.stdout
