"""scripts/tensorboard_screenshots.py: on a run with a custom-scalars layout, it starts TensorBoard, opens the
legends it names (one per chart, 7 and 3 series as in the default's layout) and saves a 256-colour PNG of the
window's size. Needs a Chromium; skipped without one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "tensorboard_screenshots.py"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow  # TensorBoard and Chromium start: ~20 s
@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_custom_scalars_screenshot_with_the_legends_open(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    writer = SummaryWriter(str(run))
    sources = [f"source_{i}" for i in range(6)] + ["all"]
    for step in range(0, 50, 5):
        for i, source in enumerate(sources):
            writer.add_scalar(f"train/reward/{source}", 0.1 * i + 0.01 * step, step)
            if i < 2 or source == "all":
                writer.add_scalar(f"train/iou/{source}", 0.2 * i + 0.005 * step, step)
    writer.add_custom_scalars({"train: per source": {
        "reward": ["Multiline", ["^train/reward/[^/]+$"]], "iou": ["Multiline", ["^train/iou/[^/]+$"]]}})
    writer.close()
    done = subprocess.run([sys.executable, str(SCRIPT), str(run), "--out", str(tmp_path / "out"), "--pages",
                           "custom_scalars", "--browser", BROWSER, "--wait-s", "8"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 legends opened" in done.stdout  # "Matches (7)" (reward) and "Matches (3)" (iou)
    image = Image.open(tmp_path / "out" / "tensorboard_custom_scalars.png")
    assert image.size == (1600, 1750) and image.mode == "P"  # the window's size, 256 colours
    assert len(image.getcolors(256) or []) > 8  # charts drawn, not a blank page
