"""Runs `python lit_triune/main.py fit -c conf/tiny.yaml` in a subprocess, shrunk to a few steps, and
reads back what it logged (a CSVLogger set on the command line) and the checkpoints it wrote."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "lit_triune" / "main.py"
TINY_CONF = REPO / "conf" / "tiny.yaml"

# A few GRPO steps of the CPU default: 2 warm-start steps, then RL; tiny train and validation sets.
TRAIN_N = 48
VAL_N = 4


def tiny_args(root: Path, *, max_steps: int, warm_start_steps: int = 2, ckpt_every: int = 1,
              cache_dir: Path | None = None, num_workers: int = 1, stage_reports: bool = False,
              config: Path | None = None, extra: list[str] | None = None) -> list[str]:
    """CLI arguments: conf/tiny.yaml (or `config`, a snapshot of it) with small overrides; logs (CSV) and
    checkpoints under `root`."""
    args = ["fit", "-c", str(config or TINY_CONF),
            f"--trainer.max_steps={max_steps}",
            "--trainer.log_every_n_steps=1",
            f"--trainer.default_root_dir={root}",
            "--trainer.logger=CSVLogger",
            f"--trainer.logger.save_dir={root}",
            "--trainer.logger.name=csv",
            "--trainer.logger.flush_logs_every_n_steps=1",
            # the last callback of conf/tiny.yaml is the ModelCheckpoint: keep one file per `ckpt_every` steps
            f"--trainer.callbacks.init_args.every_n_train_steps={ckpt_every}",
            "--trainer.callbacks.init_args.save_top_k=-1",
            f"--trainer.callbacks.init_args.dirpath={root / 'checkpoints'}",
            "--trainer.callbacks.init_args.filename={step}",
            f"--model.warm_start_steps={warm_start_steps}",
            # the default's 16 prompts and 128 new tokens are sized for learning, not for a few test steps
            "--data.batch_size=4", "--data.val_batch_size=8", "--model.max_new_tokens=24",
            f"--model.stage_reports={str(stage_reports).lower()}",
            f"--data.num_workers={num_workers}",
            f"--data.cache_dir={cache_dir or root / 'data'}"]
    for task in config_tasks(config or TINY_CONF):
        args += [f"--data.synthetic.{task}={TRAIN_N}", f"--data.val_synthetic.{task}={VAL_N}"]
    return args + list(extra or [])


def config_tasks(config: Path) -> list[str]:
    """The synthetic tasks a config trains on (each shrunk to TRAIN_N / VAL_N samples by tiny_args)."""
    import yaml

    return sorted(yaml.safe_load(Path(config).read_text())["data"]["synthetic"])


def snapshot_config(tmp_path: Path) -> Path:
    """A copy of conf/tiny.yaml, so runs compared with each other use the same file even if the
    checkout's copy changes meanwhile."""
    out = tmp_path / "tiny.yaml"
    shutil.copyfile(TINY_CONF, out)
    return out


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_PORT", "MASTER_ADDR", "LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK")}
    env.update(VLLM_ENABLE_V1_MULTIPROCESSING="0", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "callbacks"), str(Path(__file__).parent)]), **extra)
    return env


def command(args: list[str]) -> list[str]:
    return [sys.executable, str(MAIN), *args]


def run_fit(args: list[str], timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(args), cwd=REPO, env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return proc


def read_metrics(root: Path, version: int | None = None) -> dict[str, dict[int, float]]:
    """metrics.csv of the CSVLogger run under root/csv -> {name: {step: value}} (last value per step)."""
    versions = sorted((root / "csv").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    path = (versions[-1] if version is None else root / "csv" / f"version_{version}") / "metrics.csv"
    out: dict[str, dict[int, float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    out.setdefault(key, {})[step] = float(value)
    return out


def step_checkpoints(root: Path) -> dict[int, Path]:
    """{global_step: path} of the `step=N.ckpt` files ModelCheckpoint wrote."""
    out = {}
    for p in (root / "checkpoints").glob("step=*.ckpt"):
        stem = p.stem.split("=")[1].split("-")[0]
        if stem.isdigit():
            out[int(stem)] = p
    return out


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint dict, or None if the file is incomplete (killed while writing)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - a torn file fails in many ways
        return None


def finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def fit_two_ranks(root: Path, config: Path, strategy: list[str], resume: Path | None = None, *, max_steps: int,
                  warm_start_steps: int, timeout: float = 500) -> tuple[list[dict], list[dict[str, Any]]]:
    """A 2-process fit of `config` under `strategy` (CLI arguments), the ViT trained in the warm-start only,
    with per-step gradient norms and rl_probe.RankProbe; returns each rank's probe record and final weights
    (the FSDP / FSDP2 tests compare them with DDP's)."""
    import torch

    probe = root / "probe"
    args = tiny_args(root, max_steps=max_steps, warm_start_steps=warm_start_steps, ckpt_every=2, config=config,
                     num_workers=0,
                     extra=["--trainer.devices=2", "--model.reward_workers=0", *strategy,
                            "--model.warm_start_freeze=none",  # the trainable set changes at the RL stage
                            *([f"--ckpt_path={resume}"] if resume else []),
                            "--trainer.callbacks+=triune_callbacks.LayerGradNorm",  # every step (tiny.yaml's: every 10)
                            "--trainer.callbacks.init_args.log_every_n_steps=1",
                            "--trainer.callbacks+=rl_probe.RankProbe", f"--trainer.callbacks.init_args.out_dir={probe}"])
    t0 = time.perf_counter()
    run_fit(args, timeout=timeout)
    print(f"\n{strategy[0]}: {time.perf_counter() - t0:.1f} s")
    info = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    return info, [torch.load(probe / f"rank{r}.pt") for r in (0, 1)]
