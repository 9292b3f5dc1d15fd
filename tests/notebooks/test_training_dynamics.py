"""Runs notebooks/training_dynamics.ipynb on the TensorBoard logs of a tiny run made with the callbacks."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.demos.boring_classes import RandomDataset
from lightning.pytorch.loggers import TensorBoardLogger
from nbclient import NotebookClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader

from triune_callbacks import DynamicIoUThreshold, LayerGradNorm, SourceMetrics

REPO = Path(__file__).parents[2]
NOTEBOOK = REPO / "notebooks" / "training_dynamics.ipynb"
SOURCES = ["math", "refcoco"]
FIGURES = ["reward_accuracy.png", "response_length.png", "reflection.png", "iou.png", "samples_per_source.png",
           "grad_norm.png", "stage_reports.png"]  # fmt: skip
WARM_START = 8  # supervised steps before the scripted RL stage


class TinyRun(LightningModule):
    """Nothing to do with lit_triune: a two-tower MLP with a warm-start (no rollouts, ViT trained) and then an RL
    stage (ViT frozen, so it logs no gradient norms) returning scripted rollout records."""

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
        if batch_idx < WARM_START:
            self.log("warm_start/loss", x.pow(2).mean())
            return {"loss": x.pow(2).mean(), "rollout": None}
        self.visual.requires_grad_(False)
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
    report = {"sources": {"math": {"accuracy": 0.5, "count": 8.0},
                          "refcoco": {"accuracy": 0.25, "iou": 0.3, "count": 8.0, "box_count": 8.0}}}
    (Path(logger.log_dir) / "stage_reports.json").write_text(json.dumps(
        {"after_warm_start": {"step": WARM_START, **report}, "final": {"step": 40, **report}}))
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


@pytest.mark.slow
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
    assert f"warm-start/RL boundary: step {WARM_START}" in text  # from stage_reports.json
    assert "skipped panel 'mAP per source (detection)': nothing logged" in text  # map is all NaN: no panel
    acc = EventAccumulator(str(log_dir / "version_0"))
    acc.Reload()
    vit_last = acc.Scalars("grad_norm/vit/total")[-1].step
    assert vit_last < WARM_START < acc.Scalars("grad_norm/llm/total")[-1].step  # ViT frozen in RL
    assert f"per-layer gradient norms compared at step {vit_last}\n" in text  # the same step for both


@pytest.mark.slow
def test_notebook_defaults_to_the_newest_run(
    runs: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIT_TRIUNE_LOG_DIR", raising=False)
    nb = _execute(runs.parent, kernel_name)
    assert f"LOG_DIR = {(runs / 'tiny' / 'version_0').resolve()}" in _stdout(nb)
    assert (runs / "tiny" / "version_0" / "figures" / "reward_accuracy.png").exists()


TINY_TASKS = ("grounding", "detection", "counting", "ocr", "chart", "math")  # conf/tiny.yaml's data.synthetic


@pytest.mark.slow
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


# ----------------------------------------------------------------- the plotting helpers, one by one
def _helpers() -> dict[str, Any]:
    """The notebook's "helpers" cell run on empty logs, to test its functions directly."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in nb.cells if "helpers" in c.metadata.get("tags", [])]
    ns: dict[str, Any] = {"SMOOTHING": 0.6, "scalars": {}, "stage_reports": {}, "IOU_THRESHOLD_TAG": "t",
                          "math": math, "plt": plt}  # fmt: skip
    exec(compile(cell.source, "helpers", "exec"), ns)  # noqa: S102 -- our own committed notebook
    return ns


def test_smoothing_is_on_by_default() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert re.search(r"^SMOOTHING = 0\.6\b", nb.cells[1].source, re.M)


def test_sparse_series_break_at_missing_windows() -> None:
    xs, ys = _helpers()["gapped"]([(5, 1.0), (10, 2.0), (30, 3.0), (35, 4.0)])  # windows 15-25 missing
    assert xs[:2] == [5, 10] and math.isnan(ys[2]) and xs[3:] == [30, 35]
    assert not any(math.isnan(y) for y in _helpers()["gapped"]([(0, 1.0), (10, 2.0)])[1])


def test_stage_labels_sit_inside_the_curves_and_never_overlap() -> None:
    h = _helpers()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([104, 109, 114, 119], [0.1, 0.2, 0.3, 0.4])  # RL-only curve; the threshold starts at step 0
    labels = h["mark_stages"](ax, [(0, 0.85), (102, 0.95), (105, 0.99)], 100)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    axes_box = ax.get_window_extent(renderer)
    assert [label.get_text() for label in labels] == ["RL from step 100", "IoU thr 0.85", "IoU thr 0.95", "IoU thr 0.99"]
    assert ax.get_xlim()[0] == 100  # the axis starts at the warm-start/RL boundary, not at step 0
    assert all(axes_box.x0 <= b.x0 and b.x1 <= axes_box.x1 + 60 for b in boxes)  # none left of the curves
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_gradient_norms_are_compared_at_a_common_step() -> None:
    common = _helpers()["common_last_step"]
    assert common({"vit": [(9, 1.0), (19, 1.0)], "llm": [(9, 1.0), (19, 1.0), (29, 1.0)]}) == 19
    assert common({"vit": [(9, 1.0)], "llm": [(10, 1.0)]}) is None


# ----------------------------------------------------------------- the documented command
COMMAND = "LIT_TRIUNE_LOG_DIR={log_dir} jupyter execute notebooks/training_dynamics.ipynb"


def test_the_documented_command_is_the_one_tested() -> None:
    doc = COMMAND.format(log_dir="runs/tiny/version_0")
    assert doc in nbformat.read(NOTEBOOK, as_version=4).cells[0].source
    assert doc in (REPO / "docs" / "callbacks.md").read_text()


def test_dev_extra_installs_what_jupyter_execute_needs() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in dev}
    assert {"nbclient", "ipykernel", "matplotlib"} <= names
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "jupyter-execute"]
    assert script.value.startswith("nbclient")  # `jupyter execute` is nbclient's
    assert any(r.startswith("jupyter-core") or r.startswith("jupyter_core") for r in importlib.metadata.requires("nbclient"))


@pytest.mark.slow
def test_documented_command_runs_from_the_repository_root(runs: Path, tmp_path: Path) -> None:
    """Exactly the documented command, from the repository root, with a relative LIT_TRIUNE_LOG_DIR (the
    kernel starts in notebooks/; the notebook resolves the path from $PWD as the shell sets it)."""
    log_dir = runs / "tiny" / "version_0"
    relative = os.path.relpath(log_dir, REPO)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PWD": str(REPO), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # fmt: skip
    env.pop("JUPYTER_PATH", None)
    shutil.rmtree(log_dir / "figures", ignore_errors=True)  # an earlier test drew them already
    done = subprocess.run(COMMAND.format(log_dir=relative), shell=True, cwd=REPO, env=env,  # noqa: S602
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]  # `jupyter execute` prints no cell output: check the files
    for name in FIGURES:
        assert (log_dir / "figures" / name).is_file(), name
