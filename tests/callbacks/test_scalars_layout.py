"""The custom-scalars layout SourceMetrics writes: one chart per statistic, every source on it."""

from __future__ import annotations

import re
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2, metadata
from test_source_metrics import SOURCES, _fit

from triune_callbacks import SourceMetrics
from triune_callbacks.scalars_layout import source_layout


def test_one_chart_per_statistic_matches_every_source_and_nothing_else() -> None:
    layout = source_layout({"train": ["accuracy", "iou@0.5"], "val": []})
    assert list(layout) == ["train: per source"]  # no category for a prefix with nothing logged
    (pattern,) = layout["train: per source"]["iou@0.5"][1]
    tags = ["train/iou@0.5/refcoco", "train/iou@0.5/all", "train/iou@0.5/other", "train/iou@0x5/all",
            "train/iou@0.5/a/b", "val/iou@0.5/all", "xtrain/iou@0.5/all"]  # fmt: skip
    assert [t for t in tags if re.match(pattern, t)] == tags[:3]  # TensorBoard uses re.match


def _layout(log_dir: str) -> layout_pb2.Layout:
    acc = EventAccumulator(log_dir, size_guidance={"tensors": 0})
    acc.Reload()
    events = acc.Tensors(metadata.CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout()
    layout.ParseFromString(events[-1].tensor_proto.string_val[0])  # TensorBoard shows the last layout
    return layout


def test_tensorboard_run_has_a_layout_overlaying_sources(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="run")
    _fit(tmp_path, [SourceMetrics(SOURCES, log_every_n_steps=2)], logger, max_steps=4, limit_val_batches=2,
         val_check_interval=4)  # fmt: skip
    layout = _layout(logger.log_dir)
    charts = {cat.title: {c.title: list(c.multiline.tag) for c in cat.chart} for cat in layout.category}
    assert list(charts) == ["train: per source", "val: per source"]
    assert list(charts["train: per source"])[:3] == ["reward", "accuracy", "format"]  # SourceMetrics.columns order
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    for prefix in ("train", "val"):
        for title, (pattern,) in charts[f"{prefix}: per source"].items():
            matched = {t.split("/")[-1] for t in acc.Tags()["scalars"] if re.match(pattern, t)}
            assert matched and matched <= {*SOURCES, "other", "all"}, (title, matched)
        assert "map" in charts[f"{prefix}: per source"]
    assert "precision" not in charts["train: per source"]  # never logged: no empty chart


def test_layout_can_be_switched_off(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="run")
    _fit(tmp_path, [SourceMetrics(SOURCES, log_every_n_steps=2, tensorboard_layout=False)], logger, max_steps=2)
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    assert metadata.CONFIG_SUMMARY_TAG not in acc.Tags()["tensors"]
