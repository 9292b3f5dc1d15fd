"""The callbacks build from YAML-like config (as LightningCLI does) and stay standalone."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import torch
from jsonargparse import ArgumentParser

import triune_callbacks
from triune_callbacks import (
    DynamicIoUThreshold,
    LayerGradNorm,
    RolloutSamplesLogger,
    ScheduledValue,
    SourceMetrics,
)


@pytest.mark.parametrize(
    ("cls", "init_args", "attr", "expected"),
    [
        (DynamicIoUThreshold, {}, "values", [0.85, 0.95, 0.99]),
        (
            ScheduledValue,
            {"attr": "kl_coef", "milestones": [0.5], "values": [0.1, 0.0]},
            "log_key",
            "train/kl_coef",
        ),
        (SourceMetrics, {"sources": ["mm_math", "refcoco"], "iou_thresholds": [0.5]}, "columns", None),
        (LayerGradNorm, {"groups": {"vit": r"blocks\.(\d+)\."}, "norm_type": 1.0}, "norm_type", 1.0),
        (RolloutSamplesLogger, {"every_n_steps": 10}, "every_n_steps", 10),
    ],
)
def test_builds_from_config(cls: type, init_args: dict[str, Any], attr: str, expected: Any) -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--callback", type=cls)
    cfg = parser.parse_object(
        {"callback": {"class_path": f"triune_callbacks.{cls.__name__}", "init_args": init_args}}
    )
    callback = parser.instantiate_classes(cfg).callback
    assert isinstance(callback, cls)
    if expected is not None:
        assert getattr(callback, attr) == expected


def _imported_packages(path: Path) -> set[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.append(node.module or "")
    return {n.split(".")[0] for n in names}


def test_package_imports_nothing_from_lit_triune() -> None:
    for path in Path(triune_callbacks.__file__).parent.glob("*.py"):
        assert "lit_triune" not in _imported_packages(path), path


def test_lit_triune_imports_nothing_from_the_callbacks() -> None:
    """The dependency runs one way: lit-triune's configs use the callbacks, its code does not."""
    root = Path(__file__).resolve().parents[2] / "lit_triune"
    for path in root.rglob("*.py"):
        assert not _imported_packages(path) & {"triune_callbacks", "callbacks"}, path


def test_metric_state_follows_the_module_device() -> None:
    cb = SourceMetrics(["a"])
    assert cb.train_stats.device.type == "cpu"

    class Module:  # stands in for a LightningModule moved to an accelerator ("meta": no GPU needed)
        device = torch.device("meta")

    record = {"data_source": ["a", "b"], "reward": [1.0, 0.0], "response": ["wait", "ok"]}
    cb._update(cb.train_stats, Module(), {"rollout": record}, "training")  # type: ignore[arg-type]
    assert cb.train_stats.stats.device.type == "meta"
