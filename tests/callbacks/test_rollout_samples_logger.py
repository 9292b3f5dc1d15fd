from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from triune_callbacks import RolloutSamplesLogger

B, G = 2, 4  # prompts, rollouts per prompt


class BoxesModel(BoringModel):
    """Grounding-style records: one image and ground truth per prompt, predictions per sample."""

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        out = super().training_step(batch, batch_idx)
        images = [Image.new("RGB", (64, 48), (0, 0, 255)) for _ in range(B)]
        record = {
            "data_source": ["refcoco"] * (B * G),
            "prompt": [f"Where is the cat? (prompt {b}) ```" for b in range(B)],
            "response": [f"<answer>[10, 10, 30, 30]</answer> ``` # not a heading {i}" for i in range(B * G)],
            "reward": [0.5] * (B * G),
            "accuracy": [1.0] * (B * G),
            "images": images,
            "pred_boxes": [[[10, 10, 30, 30], ["bad", None]] for _ in range(B * G)],
            "gt_boxes": [[[40, 20, 60, 40]] for _ in range(B)],
        }
        return {"loss": out["loss"], "rollout": record}


def _fit(tmp_path: Path, cb: RolloutSamplesLogger, logger: Any, steps: int = 4) -> None:
    Trainer(
        default_root_dir=tmp_path,
        max_steps=steps,
        callbacks=[cb],
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    ).fit(BoxesModel())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every_n_steps": 0}, "every_n_steps.*>= 1, got 0"),
        ({"num_samples": 0}, "num_samples"),
        ({"max_chars": 0}, "max_chars"),
        ({"output_key": ""}, "output_key"),
    ],
)
def test_rejects_bad_args(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        RolloutSamplesLogger(**kwargs)


def test_writes_text_and_box_images_to_tensorboard(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="run")
    _fit(tmp_path, RolloutSamplesLogger(every_n_steps=2, num_samples=3), logger)
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    texts = sorted(acc.Tags()["tensors"])
    assert texts == [f"rollout/sample_{k}/text_summary" for k in range(3)]
    assert [e.step for e in acc.Tensors("rollout/sample_0/text_summary")] == [0, 2]
    markdown = acc.Tensors("rollout/sample_2/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "`refcoco`" in markdown and "**reward** 0.500" in markdown
    assert "    Where is the cat? (prompt 1) ```" in markdown  # per-prompt entry of the last sample, indented
    assert "    <answer>[10, 10, 30, 30]</answer>" in markdown

    assert sorted(acc.Tags()["images"]) == [f"rollout/boxes_{k}" for k in range(3)]
    event = acc.Images("rollout/boxes_0")[0]
    image = Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB")
    assert image.size == (64, 48)
    assert image.getpixel((10, 20)) == (255, 0, 0)  # predicted box edge: red
    assert image.getpixel((40, 30)) == (0, 255, 0)  # ground-truth box edge: green
    assert image.getpixel((50, 30)) == (0, 0, 255)  # inside: untouched


def test_sample_indices_spread_over_the_batch() -> None:
    assert RolloutSamplesLogger(num_samples=4).sample_indices(32) == [0, 10, 21, 31]
    assert RolloutSamplesLogger(num_samples=4).sample_indices(2) == [0, 1]
    assert RolloutSamplesLogger(num_samples=1).sample_indices(8) == [0]


def test_long_text_is_cut() -> None:
    cb = RolloutSamplesLogger(max_chars=10)
    text = cb.format_sample({"data_source": ["x"], "response": ["y" * 50]}, 0)
    assert "    yyyyyyyyyy … [40 more chars]" in text


def test_skips_without_tensorboard(tmp_path: Path, caplog: Any) -> None:
    cb = RolloutSamplesLogger(every_n_steps=1)
    with caplog.at_level("INFO"):
        _fit(tmp_path, cb, CSVLogger(tmp_path), steps=2)
    assert "no TensorBoardLogger" in caplog.text
    _fit(tmp_path, RolloutSamplesLogger(every_n_steps=1), False, steps=1)


def test_missing_response_is_a_clear_error(tmp_path: Path) -> None:
    class NoResponse(BoxesModel):
        def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            out = super().training_step(batch, batch_idx)
            del out["rollout"]["response"]
            return out

    with pytest.raises(MisconfigurationException, match="'response' and 'data_source'"):
        Trainer(
            max_steps=1,
            callbacks=[RolloutSamplesLogger(every_n_steps=1)],
            logger=TensorBoardLogger(tmp_path),
            enable_progress_bar=False,
        ).fit(NoResponse())
