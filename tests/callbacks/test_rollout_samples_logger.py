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
from triune_callbacks.rollout_samples_logger import GT_COLOR, PRED_COLOR

B, G = 2, 4  # prompts, rollouts per prompt


def boxes_record() -> dict[str, Any]:
    """Prompt 0 a grounding task (ground-truth box), prompt 1 a chart task (image, no boxes)."""
    return {
        "data_source": ["refcoco"] * G + ["chart"] * G,
        "prompt": [f"Where is the cat? (prompt {b}) ```" for b in range(B)],
        "response": [f"<answer>[10, 10, 30, 30]</answer> ``` # not a heading {i}" for i in range(B * G)],
        "reward": [0.5] * (B * G),
        "accuracy": [1.0] * (B * G),
        "iou": [0.25] * G + [float("nan")] * G,
        "images": [Image.new("RGB", (64, 48), (200, 200, 200)) for _ in range(B)],
        "pred_boxes": [[[10, 10, 30, 30], ["bad", None], [0, 0, 1e30, float("inf")]] for _ in range(B * G)],
        "gt_boxes": [[[40, 20, 60, 40]], []],
    }


class BoxesModel(BoringModel):
    """Grounding-style and chart-style records: one image and ground truth per prompt, predictions per sample."""

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        out = super().training_step(batch, batch_idx)
        return {"loss": out["loss"], "rollout": boxes_record()}


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
        ({"wrap_width": 0}, "wrap_width"),
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
    assert "`chart`" in markdown and "**reward** 0.500" in markdown and "**iou**" not in markdown  # NaN: n/a
    assert "    Where is the cat? (prompt 1) ```" in markdown  # per-prompt entry of the last sample, indented
    assert "    <answer>[10, 10, 30, 30]</answer>" in markdown
    first = acc.Tensors("rollout/sample_0/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "`refcoco`" in first and "**iou** 0.250" in first

    # 3 box images, all of grounding samples: the chart samples have an image but no boxes
    assert sorted(acc.Tags()["images"]) == [f"rollout/boxes_{k}" for k in range(3)]
    event = acc.Images("rollout/boxes_0")[0]
    image = Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB")
    assert image.size == (256, 192 + 36)  # scaled x4 to >= 224 px, plus a two-line caption strip
    assert image.getpixel((40, 80)) == PRED_COLOR  # predicted box [10, 10, 30, 30] x4, left edge: orange
    assert image.getpixel((160, 120)) == GT_COLOR  # ground-truth box [40, 20, 60, 40] x4, left edge: blue
    assert image.getpixel((200, 120)) == (200, 200, 200)  # inside: untouched
    caption = [image.getpixel((x, y)) for x in range(256) for y in range(192, 228)]
    assert {PRED_COLOR, GT_COLOR} <= set(caption)  # the legend's words in the boxes' colours


def test_only_box_tasks_get_images_and_captions_name_source_reward_iou() -> None:
    cb = RolloutSamplesLogger(num_samples=3)
    record = boxes_record()
    assert cb.box_indices(record) == [0, 2, 3]  # spread over the G grounding samples only
    assert cb.boxes_image(record, G) is None  # chart sample: image, but no ground-truth boxes
    assert cb.caption(record, 0) == "refcoco · reward 0.50 · IoU 0.25"
    assert cb.caption(record, G) == "chart · reward 0.50 · IoU n/a"


def test_prompt_and_response_lines_wrap() -> None:
    cb = RolloutSamplesLogger(wrap_width=20)
    text = cb.format_sample({"data_source": ["x"], "response": ["abcd " * 10]}, 0)
    code = [line for line in text.splitlines() if line.startswith("    ")]
    assert len(code) == 3 and all(len(line) <= 4 + 20 for line in code)
    assert "".join(line[4:] for line in code) == "abcd " * 10  # wrapping loses no character


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


def test_a_long_caption_widens_the_image_instead_of_being_cut() -> None:
    from triune_callbacks.rollout_samples_logger import draw_boxes

    canvas = draw_boxes(Image.new("RGB", (64, 48)), [], [[1, 1, 2, 2]], "synthetic_grounding_long_name " * 3)
    assert canvas.size[0] > 256 and canvas.size[1] == 192 + 36
