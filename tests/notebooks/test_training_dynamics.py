"""Runs notebooks/training_dynamics.ipynb on the TensorBoard logs of a tiny run made with the callbacks."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.demos.boring_classes import RandomDataset
from lightning.pytorch.loggers import TensorBoardLogger
from nbclient import NotebookClient
from torch import nn
from torch.utils.data import DataLoader

from triune_callbacks import DynamicIoUThreshold, LayerGradNorm, SourceMetrics

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "training_dynamics.ipynb"
SOURCES = ["math", "refcoco"]
FIGURES = ["reward_accuracy.png", "response_length.png", "reflection.png", "iou.png", "samples_per_source.png",
           "grad_norm.png"]  # fmt: skip


class TinyRun(LightningModule):
    """Nothing to do with lit_triune: a two-tower MLP returning scripted rollout records."""

    def __init__(self) -> None:
        super().__init__()
        self.iou_threshold = 0.5
        self.visual = nn.Module()
        self.visual.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
        self.language_model = nn.Module()
        self.language_model.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, Any]:
        x = batch[:, :8]
        for layer in [*self.visual.blocks, *self.language_model.layers]:
            x = torch.tanh(layer(x))
        g = random.Random(batch_idx)
        n = 8
        progress = batch_idx / 40
        sources = [SOURCES[i % 2] for i in range(n)]
        accuracy = [float(g.random() < 0.3 + 0.5 * progress) for _ in range(n)]
        record = {
            "data_source": sources,
            "response": [g.choice(["Wait, let me re-check.", "<answer>4</answer>"]) for _ in range(n)],
            "reward": torch.tensor(accuracy) + 0.1,
            "accuracy": torch.tensor(accuracy),
            "format": torch.ones(n),
            "response_length": torch.tensor([g.randint(20, 200) for _ in range(n)]),
            "truncated": torch.zeros(n, dtype=torch.bool),
            "verifier_failure": torch.zeros(n, dtype=torch.bool),
            "iou": torch.tensor([g.random() if s == "refcoco" else float("nan") for s in sources]),
            "map": torch.tensor([float("nan")] * n),
        }
        return {"loss": x.pow(2).mean(), "rollout": record}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 160), batch_size=4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("work") / "runs"
    old = runs / "older" / "version_0"
    old.mkdir(parents=True)
    (old / "events.out.tfevents.0.old").write_bytes(b"")  # an older run the default must not pick
    os.utime(old / "events.out.tfevents.0.old", (time.time() - 3600, time.time() - 3600))
    logger = TensorBoardLogger(runs, name="tiny")
    Trainer(
        max_steps=40,
        log_every_n_steps=2,
        logger=logger,
        callbacks=[
            DynamicIoUThreshold(),
            SourceMetrics(SOURCES, log_every_n_steps=4),
            LayerGradNorm(log_every_n_steps=4),
        ],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=runs,
    ).fit(TinyRun())
    return runs


def _execute(cwd: Path, kernel_name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, kernel_name=kernel_name, timeout=120, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def _stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


def test_notebook_writes_figures_for_the_log_dir_from_env(
    runs: Path, kernel_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_dir = runs / "tiny"
    monkeypatch.setenv("LIT_TRIUNE_LOG_DIR", str(log_dir))
    nb = _execute(tmp_path, kernel_name)  # cwd without runs/: only the env var can point at the logs
    for name in FIGURES:
        assert (log_dir / "figures" / name).stat().st_size > 5000, name
    text = _stdout(nb)
    assert "IoU threshold stages: [(0, 0.85), (4, 0.95), (10, 0.99)]" in text  # 10 % / 25 % of 40
    assert "sources: ['math', 'refcoco', 'all']" in text


def test_notebook_defaults_to_the_newest_run(
    runs: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIT_TRIUNE_LOG_DIR", raising=False)
    nb = _execute(runs.parent, kernel_name)
    assert f"LOG_DIR = {(runs / 'tiny' / 'version_0').resolve()}" in _stdout(nb)
    assert (runs / "tiny" / "version_0" / "figures" / "reward_accuracy.png").exists()


TINY_TASKS = ("grounding", "detection", "counting", "ocr", "chart", "math")  # conf/tiny.yaml's data.synthetic


def test_notebook_on_a_real_tiny_lit_triune_run(kernel_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook reads the logs the CPU default writes (`conf/tiny.yaml`, shortened), not only scripted ones."""
    import subprocess

    repo = Path(__file__).parents[2]
    out = tmp_path / "runs"
    cmd = [sys.executable, str(repo / "lit_triune" / "main.py"), "fit", "-c", str(repo / "conf" / "tiny.yaml"),
           "--trainer.max_steps=12", "--model.warm_start_steps=4", "--trainer.log_every_n_steps=2",
           f"--trainer.default_root_dir={out}", f"--trainer.logger.init_args.save_dir={out}",
           *[f"--data.synthetic.{t}=64" for t in TINY_TASKS], *[f"--data.val_synthetic.{t}=4" for t in TINY_TASKS],
           "--data.batch_size=4", "--data.val_batch_size=8", "--model.max_new_tokens=24", "--data.num_workers=0",
           f"--data.cache_dir={tmp_path / 'data'}"]  # fmt: skip
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    for stage in ("after_warm_start", "final"):  # conf/tiny.yaml reports no random-init stage
        assert f"== validation: {stage}" in done.stdout
    log_dir = out / "tiny"
    monkeypatch.setenv("LIT_TRIUNE_LOG_DIR", str(log_dir))
    nb = _execute(tmp_path, kernel_name)
    for name in ("reward_accuracy.png", "response_length.png", "reflection.png", "samples_per_source.png",
                 "grad_norm.png"):  # fmt: skip
        assert (log_dir / "figures" / name).stat().st_size > 5000, name
    text = _stdout(nb)
    assert "synthetic_counting" in text and "synthetic_chart" in text
