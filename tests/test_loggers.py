"""The TensorBoard logger the configs use writes the run's own scalars and no placeholders."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_triune.loggers import TriuneTensorBoardLogger

REPO = Path(__file__).parents[1]


class LoggingModel(BoringModel):
    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        out = super().training_step(batch, batch_idx)
        self.log("train/loss", out["loss"])
        return out


def test_no_hp_metric_and_no_epoch_tags(tmp_path: Path) -> None:
    logger = TriuneTensorBoardLogger(tmp_path, name="run")
    Trainer(max_steps=4, log_every_n_steps=1, logger=logger, enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=False, default_root_dir=tmp_path).fit(LoggingModel())  # fmt: skip
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    assert acc.Tags()["scalars"] == ["train/loss"]


@pytest.mark.parametrize("config", ["tiny.yaml", "orsta.yaml"])
def test_shipped_configs_use_it(config: str, tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO / "conf" / config).read_text())["trainer"]["logger"]
    module, name = spec["class_path"].rsplit(".", 1)
    logger = getattr(importlib.import_module(module), name)(**{**spec["init_args"], "save_dir": str(tmp_path)})
    assert isinstance(logger, TriuneTensorBoardLogger)
