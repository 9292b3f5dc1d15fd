"""A few rollouts as TensorBoard text, and for box tasks their boxes drawn on the image."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from triune_callbacks._trainer_steps import logger_step

PRED_COLOR = (230, 159, 0)  # orange (Okabe-Ito): tells apart from blue with any colour vision
GT_COLOR = (0, 114, 178)  # blue
MIN_IMAGE_SIDE = 224  # smaller images are scaled up (nearest) so boxes and caption are legible


def _indent(text: str, limit: int, width: int) -> str:
    """Markdown code block by indentation, so model output cannot break the markup; lines are wrapped at
    ``width`` characters because TensorBoard shows a code block without wrapping."""
    if len(text) > limit:
        text = text[:limit] + f" … [{len(text) - limit} more chars]"
    lines = [part for line in text.splitlines() or [""]
             for part in textwrap.wrap(line, width, replace_whitespace=False, drop_whitespace=False) or [""]]
    return "\n".join("    " + line for line in lines)


def _pick(seq: Any, i: int, n: int) -> Any:
    """Entry of a per-sample (length N) or per-prompt (length B, N = B * G) list for sample i."""
    if seq is None:
        return None
    length = len(seq)
    if length == n:
        return seq[i]
    if length and n % length == 0:
        return seq[i // (n // length)]
    return None


def _scalar(value: Any, i: int) -> float | None:
    """Entry ``i`` of a per-sample value as a float; None when absent or NaN (not applicable)."""
    if value is None:
        return None
    out = float(torch.as_tensor(value).reshape(-1)[i])
    return None if math.isnan(out) else out


class RolloutSamplesLogger(Callback):
    """Every ``every_n_steps`` training batches, writes a few rollouts to TensorBoard.

    Reads the record dict ``outputs[output_key]`` of ``training_step`` (docs/interfaces.md): for
    ``num_samples`` samples spread evenly over the batch, ``data_source``, ``response`` (required),
    ``prompt``, ``reward``, ``accuracy``, ``format``, ``iou`` (optional) become one markdown text under
    ``rollout/sample_<k>``; prompt and response are code blocks wrapped at ``wrap_width`` characters.

    Box tasks: samples whose ``gt_boxes`` entry is a non-empty list of ``[x1, y1, x2, y2]`` (pixel frame
    of the sample's PIL image in ``images``) are drawn, up to ``num_samples`` spread over them, under
    ``rollout/boxes_<k>``: predicted boxes (``pred_boxes``) in **orange**, ground truth in **blue**, and
    a caption strip below the image with the source, reward and IoU and the colour legend. Samples of
    other tasks (chart, OCR, math) get no image. ``prompt``, ``images`` and ``gt_boxes`` may hold one
    entry per sample (N) or per prompt (B, with ``N = B * G``).

    Only TensorBoard has text and image panels here: without a :class:`TensorBoardLogger` the
    callback logs one info message and does nothing. Runs on global rank 0 only.

    Args:
        every_n_steps: Log every this many training batches (at Lightning's logger step).
        num_samples: Samples per logging step.
        output_key: Key of the record dict in the step output.
        draw_boxes: Whether to draw and log images with boxes.
        max_chars: Prompt and response are cut to this many characters.
        wrap_width: Prompt and response lines are wrapped at this many characters.

    Raises:
        MisconfigurationException: If ``every_n_steps``, ``num_samples``, ``max_chars`` or ``wrap_width``
            is below 1 or ``output_key`` is empty.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from lightning.pytorch.loggers import TensorBoardLogger
        >>> from triune_callbacks import RolloutSamplesLogger
        >>> trainer = Trainer(max_steps=100, logger=TensorBoardLogger("runs"),
        ...                   callbacks=[RolloutSamplesLogger(every_n_steps=50, num_samples=4)])
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        num_samples: int = 4,
        output_key: str = "rollout",
        draw_boxes: bool = True,
        max_chars: int = 2000,
        wrap_width: int = 100,
    ) -> None:
        for name, value in (
            ("every_n_steps", every_n_steps),
            ("num_samples", num_samples),
            ("max_chars", max_chars),
            ("wrap_width", wrap_width),
        ):
            if value < 1:
                raise MisconfigurationException(f"`{name}` must be >= 1, got {value}.")
        if not output_key:
            raise MisconfigurationException(f"`output_key` must be a non-empty string, got {output_key!r}.")
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.output_key = output_key
        self.draw_boxes = draw_boxes
        self.max_chars = max_chars
        self.wrap_width = wrap_width
        self._tb: TensorBoardLogger | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if self._tb is None:
            rank_zero_info(
                "RolloutSamplesLogger: no TensorBoardLogger among the trainer's loggers; not logging."
            )

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = logger_step(trainer)
        if self._tb is None or not trainer.is_global_zero or step % self.every_n_steps != 0:
            return
        if isinstance(outputs, Mapping) and self.output_key in outputs and outputs[self.output_key] is None:
            return  # the step ran no rollout (e.g. a supervised warm-start step)
        record = outputs.get(self.output_key) if isinstance(outputs, Mapping) else None
        if not isinstance(record, Mapping) or "response" not in record or "data_source" not in record:
            got = sorted(record) if isinstance(record, Mapping) else type(outputs).__name__
            raise MisconfigurationException(
                f"RolloutSamplesLogger(output_key={self.output_key!r}) needs training_step to return a dict whose"
                f" {self.output_key!r} entry has 'response' and 'data_source' (docs/interfaces.md); got {got}."
            )
        self.log_record(record, step)

    def sample_indices(self, n: int) -> list[int]:
        """``num_samples`` indices spread evenly over ``n`` samples (so different prompts show)."""
        k = min(self.num_samples, n)
        return sorted({round(j * (n - 1) / max(k - 1, 1)) for j in range(k)})

    def box_indices(self, record: Mapping[str, Any]) -> list[int]:
        """Up to ``num_samples`` samples of box tasks (non-empty ground-truth boxes), spread over them."""
        n = len(record["data_source"])
        boxed = [i for i in range(n) if _pick(record.get("gt_boxes"), i, n)]
        return [boxed[j] for j in self.sample_indices(len(boxed))]

    def log_record(self, record: Mapping[str, Any], step: int) -> None:
        """Writes text (and box images) for a few samples of ``record`` at ``step``."""
        if self._tb is None:
            return
        experiment = self._tb.experiment
        n = len(record["data_source"])
        for k, i in enumerate(self.sample_indices(n)):
            experiment.add_text(f"rollout/sample_{k}", self.format_sample(record, i), global_step=step)
        if not self.draw_boxes:
            return
        images = [image for i in self.box_indices(record) if (image := self.boxes_image(record, i)) is not None]
        for k, image in enumerate(images):
            experiment.add_image(f"rollout/boxes_{k}", image, global_step=step, dataformats="CHW")

    def format_sample(self, record: Mapping[str, Any], i: int) -> str:
        """Markdown for sample ``i``: source and scores, then prompt and response as code blocks."""
        n = len(record["data_source"])
        scores = [f"**source** `{record['data_source'][i]}`", f"**sample** {i}/{n}"]
        for key in ("reward", "accuracy", "format", "iou"):
            value = _scalar(record.get(key), i)
            if value is not None:
                scores.append(f"**{key}** {value:.3f}")
        parts = [" · ".join(scores)]
        prompt = _pick(record.get("prompt"), i, n)
        if prompt is not None:
            parts += ["**prompt**", _indent(str(prompt), self.max_chars, self.wrap_width)]
        parts += ["**response**", _indent(str(record["response"][i]), self.max_chars, self.wrap_width)]
        return "\n\n".join(parts)

    def caption(self, record: Mapping[str, Any], i: int) -> str:
        """First caption line of a box image: source, reward and IoU of sample ``i``."""
        parts = [str(record["data_source"][i])]
        for key, label in (("reward", "reward"), ("iou", "IoU")):
            value = _scalar(record.get(key), i)
            parts.append(f"{label} {value:.2f}" if value is not None else f"{label} n/a")
        return " · ".join(parts)

    def boxes_image(self, record: Mapping[str, Any], i: int) -> torch.Tensor | None:
        """uint8 ``[3, H, W]`` image of sample ``i`` with predicted (orange) and true (blue) boxes and a
        caption strip below; None unless the sample has an image and ground-truth boxes."""
        from PIL import Image

        n = len(record["data_source"])
        image = _pick(record.get("images"), i, n)
        gt = _pick(record.get("gt_boxes"), i, n)
        if isinstance(image, Sequence) and not isinstance(image, Image.Image) and image:
            image = image[0]  # several images per sample: draw on the first
        if not isinstance(image, Image.Image) or not gt:
            return None
        canvas = draw_boxes(image, _pick(record.get("pred_boxes"), i, n) or [], gt, self.caption(record, i))
        pixels = torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8)  # [H * W * 3]
        return pixels.view(canvas.size[1], canvas.size[0], 3).permute(2, 0, 1).contiguous()  # [3, H, W]


def draw_boxes(image: Any, pred: Sequence[Any], gt: Sequence[Any], caption: str) -> Any:
    """RGB copy of ``image`` (scaled up to :data:`MIN_IMAGE_SIDE`) with ground-truth (blue) and predicted
    (orange) boxes, and below it a white strip with ``caption`` and the colour legend."""
    from PIL import Image, ImageDraw, ImageFont

    scale = max(1, math.ceil(MIN_IMAGE_SIDE / max(image.size)))
    w, h = image.size[0] * scale, image.size[1] * scale
    font = ImageFont.load_default(size=12)
    line = 16
    text_w = math.ceil(max(font.getlength(caption), font.getlength("predicted · ground truth"))) + 6
    canvas = Image.new("RGB", (max(w, text_w), h + 2 * line + 4), (255, 255, 255))  # caption never cut off
    canvas.paste(image.convert("RGB").resize((w, h), Image.NEAREST), (0, 0))
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(w, h) / 110))
    for boxes, color in ((gt, GT_COLOR), (pred, PRED_COLOR)):
        for box in boxes:
            try:
                x1, y1, x2, y2 = (float(v) * scale for v in box)
            except (TypeError, ValueError):
                continue  # model output is untrusted: skip malformed boxes
            if not all(map(math.isfinite, (x1, y1, x2, y2))):
                continue
            x1, x2 = (min(max(v, -1.0), w + 1.0) for v in (x1, x2))  # far-off boxes end at the border
            y1, y2 = (min(max(v, -1.0), h + 1.0) for v in (y1, y2))
            draw.rectangle([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], outline=color, width=width)
    draw.text((3, h + 2), caption, fill=(0, 0, 0), font=font)
    x = 3
    for text, color in (("predicted", PRED_COLOR), (" · ", (0, 0, 0)), ("ground truth", GT_COLOR)):
        draw.text((x, h + 2 + line), text, fill=color, font=font)
        x += draw.textlength(text, font=font)
    return canvas
