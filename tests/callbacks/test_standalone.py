"""The callbacks' own distribution (./callbacks, `triune-callbacks`) installed alone, used by a foreign project.

How, and why it is honest: a throwaway venv (no pip, no system site-packages) sees this interpreter's
site-packages as a plain path (a `.pth` line), so torch, lightning and torchmetrics are there but no
`.pth` hook of that site runs -- lit-triune's editable install (and the callbacks' own) stay invisible.
`pip install --no-index` of ./callbacks into it must then resolve every requirement without an index,
and the foreign project, run from a directory with its own `callbacks.py`, must train with
DynamicIoUThreshold and SourceMetrics while `lit_triune` is not importable. No network, ~15 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

CALLBACKS_DIR = Path(__file__).resolve().parents[2] / "callbacks"

FOREIGN_CALLBACKS_PY = '''
"""The foreign project's own module named `callbacks`: it must win, and not hide triune_callbacks."""
class EMA:
    decay = 0.999
'''

FOREIGN_TRAIN_PY = '''
import importlib.util, json, sys

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from callbacks import EMA  # this project's callbacks.py
from triune_callbacks import DynamicIoUThreshold, SourceMetrics

SOURCES = ["boxes", "digits"]


class Boring(LightningModule):  # BoringModel-style: a linear layer, scripted rollout records
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.iou_threshold = 0.5  # DynamicIoUThreshold overwrites it
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(self.iou_threshold)
        loss = self.layer(batch[0]).pow(2).mean()
        n = 4
        record = {"data_source": [SOURCES[i % 2] for i in range(n)],
                  "reward": torch.tensor([1.0, 0.0, 0.5, 1.0]),
                  "accuracy": torch.tensor([1.0, 0.0, 0.0, 1.0])}
        return {"loss": loss, "rollout": record}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=4)
model = Boring()
trainer = Trainer(accelerator="cpu", max_steps=8, log_every_n_steps=2, logger=CSVLogger(sys.argv[1], name="run"),
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  callbacks=[DynamicIoUThreshold(), SourceMetrics(SOURCES, log_every_n_steps=2)])
trainer.fit(model, data)
import triune_callbacks
print("RESULT " + json.dumps({
    "lit_triune_importable": importlib.util.find_spec("lit_triune") is not None,
    "ema_decay": EMA.decay,
    "callbacks_module": sys.modules["callbacks"].__file__,
    "triune_callbacks_file": triune_callbacks.__file__,
    "thresholds": model.seen,
    "logged": sorted(trainer.logged_metrics) + sorted(trainer.callback_metrics),
    "log_dir": trainer.log_dir,
}))
'''


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (a developer's may name the repo, which would make lit_triune importable)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def standalone_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("standalone")
    src = root / "src"  # a copy: the build leaves build/ and *.egg-info behind
    shutil.copytree(CALLBACKS_DIR, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "parent_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --no-index: every requirement must already be satisfied (lightning, torchmetrics); nothing fetched
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation", str(src)],
                   check=True, env=_clean_env(), cwd=root)
    return python


def test_metadata_declares_only_lightning_and_torchmetrics(standalone_python: Path) -> None:
    out = subprocess.run(
        [str(standalone_python), "-c", "import importlib.metadata as m, json; d = m.distribution('triune-callbacks');"
         " print(json.dumps({'requires': d.requires, 'files': [str(f) for f in d.files]}))"],
        check=True, capture_output=True, text=True, env=_clean_env()).stdout
    meta = json.loads(out)
    names = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip() for r in meta["requires"]}
    assert names == {"lightning", "torchmetrics", "tensorboard"}, meta["requires"]
    (tb,) = [r for r in meta["requires"] if r.startswith("tensorboard")]
    assert 'extra == "tensorboard"' in tb  # optional
    top = {f.split("/")[0] for f in meta["files"] if not f.startswith(("..", "triune_callbacks-"))}
    assert top == {"triune_callbacks"}, top  # no module named `callbacks` is installed


@pytest.mark.slow
def test_foreign_project_with_its_own_callbacks_py(standalone_python: Path, tmp_path: Path) -> None:
    project = tmp_path / "foreign"
    project.mkdir()
    (project / "callbacks.py").write_text(textwrap.dedent(FOREIGN_CALLBACKS_PY))
    (project / "train.py").write_text(textwrap.dedent(FOREIGN_TRAIN_PY))
    proc = subprocess.run([str(standalone_python), "train.py", str(tmp_path / "logs")], cwd=project,
                          capture_output=True, text=True, env=_clean_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line[len("RESULT "):])
    assert result["lit_triune_importable"] is False
    assert result["ema_decay"] == 0.999 and Path(result["callbacks_module"]).parent == project
    assert str(standalone_python.parents[1]) in result["triune_callbacks_file"]  # the installed copy, not the repo's
    # DynamicIoUThreshold: 0.85 -> 0.95 -> 0.99 at 10 % / 25 % of the 8 steps (milestones open their stage)
    assert result["thresholds"] == [0.85, 0.95, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99]
    rows = (Path(result["log_dir"]) / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    for key in ("train/reward/boxes", "train/accuracy/digits", "train/reward/all", "train/iou_threshold"):
        assert key in header, header
    reward_col = header.index("train/reward/all")
    assert {float(r.split(",")[reward_col]) for r in rows[1:] if r.split(",")[reward_col]} == {0.625}
