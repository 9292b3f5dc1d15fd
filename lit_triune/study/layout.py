"""Where a study keeps its runs, and what state a run is in.

    <out>/warm_start/seed_<s>/           the seed's supervised warm-start run
    <out>/warm_start/seed_<s>/policy/    its policy as an HF directory, the start of every RL run of the seed
    <out>/<variant>/seed_<s>/            one RL run
        config.yaml                      the run's full config (`python lit_triune/main.py fit -c` it)
        run.json                         command, wall time, load average, exit code of each launch
        train.log                        the trainer's stdout and stderr
        logs/                            TensorBoard events, stage_reports.json, the resolved config
        checkpoints/last.ckpt            what an interrupted run resumes from
    <out>/results.md, results.json       the tables (`table`)
    <out>/figures/*.png                  the figures (`figures`)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WARM_START = "warm_start"
CONFIG, RUN_RECORD, TRAIN_LOG, LOGS, CHECKPOINTS, POLICY = (
    "config.yaml", "run.json", "train.log", "logs", "checkpoints", "policy")  # fmt: skip
STAGE_REPORTS = "stage_reports.json"
_SEED_DIR = re.compile(r"seed_(-?\d+)$")


def seed_dir_name(seed: int) -> str:
    return f"seed_{seed}"


def warm_start_dir(out: Path, seed: int) -> Path:
    return Path(out) / WARM_START / seed_dir_name(seed)


def policy_dir(out: Path, seed: int) -> Path:
    return warm_start_dir(out, seed) / POLICY


def run_dir(out: Path, variant: str, seed: int) -> Path:
    return Path(out) / variant / seed_dir_name(seed)


def log_dir(run: Path) -> Path:
    return Path(run) / LOGS


def last_checkpoint(run: Path) -> Path | None:
    path = Path(run) / CHECKPOINTS / "last.ckpt"
    return path if path.is_file() else None


def read_stage_reports(run: Path) -> dict[str, Any] | None:
    """The run's stage_reports.json ({stage: {"step", "sources": {source: {metric: value}}}}), or None."""
    path = log_dir(run) / STAGE_REPORTS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:  # written while we read it: not finished yet
        return None


def is_finished(run: Path) -> bool:
    """An RL run is finished when its final stage report is written (the last thing a fit does)."""
    reports = read_stage_reports(run)
    return bool(reports and "final" in reports)


def policy_ready(out: Path, seed: int) -> bool:
    """The export is renamed into place when complete, so its config.json marks a usable policy."""
    return (policy_dir(out, seed) / "config.json").is_file()


def rl_runs(out: Path) -> Iterator[tuple[str, int, Path]]:
    """(variant, seed, run dir) of every RL run directory under `out`, sorted by variant then seed."""
    found = []
    for variant_dir in sorted(p for p in Path(out).iterdir() if p.is_dir()) if Path(out).is_dir() else []:
        if variant_dir.name in (WARM_START, "figures"):
            continue
        for seed_path in variant_dir.iterdir():
            match = _SEED_DIR.match(seed_path.name)
            if match and seed_path.is_dir():
                found.append((variant_dir.name, int(match.group(1)), seed_path))
    yield from sorted(found, key=lambda t: (t[0], t[1]))


def first_run(out: Path) -> Path | None:
    """The run a study is read by on its own: the recipe's (else the first variant's) lowest seed, finished first."""
    runs = sorted(rl_runs(out), key=lambda t: (not is_finished(t[2]), t[0] != "recipe", t[1]))
    return runs[0][2] if runs else None
