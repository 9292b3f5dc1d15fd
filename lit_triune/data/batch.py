"""Sample -> prompt item (resize, boxes into the verifier's frame, chat template) and the batch type.

Everything that can fail on bad data raises `SkipSample(reason)`, which the stream counts, so a
bad sample costs one counted skip instead of a crash hours into a run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from lit_triune.boxes import (
    BoxError,
    box_verifiers,
    format_boxes,
    is_normalized,
    parse_truth,
    rescale,
    smart_resize,
    verifier_parm,
)
from lit_triune.data.cot import CoTPool, math_instruction
from lit_triune.data.images import ImageDecodeError, decode_image
from lit_triune.data.schema import IMAGE_PLACEHOLDER, SampleError
from lit_triune.data.sft import sft_target

SKIP_REASONS = ("json", "missing_field", "unknown_verifier", "bad_image", "bad_boxes", "image_count", "invalid",
                "bad_shard")


class SkipSample(Exception):
    """A sample that cannot be used; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def skip_reason(err: SampleError) -> str:
    """Map a schema error to the coarse reason used in skip counts."""
    if err.field == "<json>":
        return "json"
    if err.reason.startswith("missing"):
        return "missing_field"
    if err.field == "reward_model.verifier":
        return "unknown_verifier"
    if err.field == "reward_model.ground_truth" and "box" in err.reason:
        return "bad_boxes"
    if err.field.startswith("images["):
        return "bad_image"
    return "invalid"


@dataclass
class PromptBatch:
    """What the DataModule yields (docs/interfaces.md): lists of length B plus skip counts.

    `sft_targets` and `cursor` extend the contract: the warm-start stage trains on the former,
    and the DataModule uses the latter to resume exactly (it is None once a batch leaves it).
    """

    prompts: list[str]
    images: list[Image.Image]
    image_sizes: list[tuple[int, int]]  # (height, width) of each image as the model sees it
    reward_models: list[dict[str, Any]]  # ground truth in the frame its verifier expects
    data_sources: list[str]
    ids: list[str]
    skips: dict[str, int] = field(default_factory=dict)  # samples skipped since the previous batch, by reason
    sft_targets: list[str] = field(default_factory=list)
    cursor: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.prompts)


def collate(items: list[dict[str, Any]], skips: Mapping[str, int] | None = None,
            cursor: dict[str, Any] | None = None) -> PromptBatch:
    return PromptBatch(
        prompts=[it["prompt"] for it in items], images=[it["image"] for it in items],
        image_sizes=[it["image_size"] for it in items], reward_models=[it["reward_model"] for it in items],
        data_sources=[it["data_source"] for it in items], ids=[it["id"] for it in items],
        skips=dict(skips or {}), sft_targets=[it["sft_target"] for it in items], cursor=cursor)


def qwen_chat(messages: list[dict[str, Any]]) -> str:
    """Qwen2.5-VL's chat template, for when no processor is given (benchmarks, fast tests)."""
    out = []
    if messages[0]["role"] != "system":
        out.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    for m in messages:
        parts = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        body = "".join("<|vision_start|><|image_pad|><|vision_end|>" if p["type"] == "image" else p["text"]
                       for p in parts)
        out.append(f"<|im_start|>{m['role']}\n{body}<|im_end|>\n")
    return "".join(out) + "<|im_start|>assistant\n"


def _structured(content: str) -> list[dict[str, str]]:
    parts: list[dict[str, str]] = []
    for i, chunk in enumerate(content.split(IMAGE_PLACEHOLDER)):
        if i:
            parts.append({"type": "image"})
        if chunk:
            parts.append({"type": "text", "text": chunk})
    return parts


class PromptBuilder:
    """Turns a validated sample into one prompt item in the model's frame.

    Args:
        processor_path: model/processor directory whose chat template to use; None -> `qwen_chat`.
        min_pixels, max_pixels: resize bounds; None -> the processor's (or Qwen defaults).
        cot: whether the CoT pool rewrites prompts; `cot_sources` limits it to some sources.
        math_instructions: append a step-by-step + answer-format instruction to `mathverify` prompts the
            CoT pool did not rewrite (the released loader does this for Orsta rows).
    """

    def __init__(self, processor_path: str | None = None, *, min_pixels: int | None = None,
                 max_pixels: int | None = None, cot: bool = False, cot_sources: list[str] | None = None,
                 cot_templates: list[str] | None = None, seed: int = 0, math_instructions: bool = False) -> None:
        self.processor_path = processor_path
        self._processor: Any = None
        self.factor, self.min_pixels, self.max_pixels = 28, min_pixels, max_pixels
        if processor_path is not None:
            ip = self.processor.image_processor
            self.factor = int(getattr(ip, "patch_size", 14)) * int(getattr(ip, "merge_size", 2))
            size = getattr(ip, "size", None) or {}
            self.min_pixels = min_pixels or getattr(ip, "min_pixels", None) or size.get("shortest_edge")
            self.max_pixels = max_pixels or getattr(ip, "max_pixels", None) or size.get("longest_edge")
        self.min_pixels = int(self.min_pixels or 56 * 56)
        self.max_pixels = int(self.max_pixels or 28 * 28 * 1280)
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) must be <= max_pixels ({self.max_pixels})")
        self.cot = CoTPool(cot_templates, seed) if cot else None
        self.cot_sources = set(cot_sources) if cot_sources else None
        self.math_instructions, self.seed = math_instructions, seed

    @property
    def processor(self) -> Any:
        if self._processor is None and self.processor_path is not None:
            from transformers import AutoProcessor

            self._processor = AutoProcessor.from_pretrained(self.processor_path)
        return self._processor

    def __getstate__(self) -> dict[str, Any]:  # workers reload the processor instead of unpickling it
        return {**self.__dict__, "_processor": None}

    def _messages(self, sample: Mapping[str, Any]) -> list[dict[str, Any]]:
        messages = copy.deepcopy(sample["prompt"])
        info = sample["extra_info"]
        wants = self.cot is not None and info.get("cot", True) and isinstance(info.get("question"), str)
        if wants and (self.cot_sources is None or sample["data_source"] in self.cot_sources):
            user = next(m for m in messages if m["role"] == "user")
            user["content"] = IMAGE_PLACEHOLDER + self.cot.apply(info["question"], str(info["id"]))
        elif self.math_instructions and sample["reward_model"]["verifier"] == "mathverify" and info.get("cot", True):
            user = [m for m in messages if m["role"] == "user"][-1]
            if not isinstance(user["content"], str):
                raise SkipSample("prompt_format", "math_instructions needs the user turn as a string")
            free_form = float(sample["reward_model"].get("format_ratio") or 0.0) == 0.0
            user["content"] = user["content"] + "\n\n" + math_instruction(str(info["id"]), free_form, self.seed)
        return [{"role": m["role"], "content": _structured(m["content"])} for m in messages]

    def chat(self, messages: list[dict[str, Any]]) -> str:
        if self.processor is None:
            return qwen_chat(messages)
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def build(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        if len(sample["images"]) != 1:
            raise SkipSample("image_count", f"expected 1 image, got {len(sample['images'])}")
        try:
            image = decode_image(sample["images"][0])
        except ImageDecodeError as err:
            raise SkipSample("bad_image", str(err)) from err
        orig = (image.height, image.width)
        try:
            size = smart_resize(*orig, factor=self.factor, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        except ValueError as err:
            raise SkipSample("bad_image", str(err)) from err
        if size != orig:
            image = image.resize((size[1], size[0]), Image.BICUBIC)
        rm = to_model_frame(sample["reward_model"], orig, size)
        info = sample["extra_info"]
        return {"prompt": self.chat(self._messages(sample)), "image": image, "image_size": size,
                "reward_model": rm, "data_source": sample["data_source"], "id": str(info["id"]),
                "sft_target": sft_target(rm, size, think=info.get("think"))}


def to_model_frame(reward_model: Mapping[str, Any], orig: tuple[int, int], size: tuple[int, int]) -> dict[str, Any]:
    """Copy of the spec with absolute-pixel box ground truth rescaled from `orig` to `size` (h, w).

    Normalised (0-1000) ground truth is frame-free and left as is; the verifier converts the
    prediction with `image_size`.
    """
    rm = dict(reward_model)
    try:
        rm["verifier_parm"] = dict(verifier_parm(rm))
    except ValueError as err:
        raise SkipSample("invalid", str(err)) from err
    if rm["verifier"] not in box_verifiers():
        return rm
    normalized = is_normalized(rm["verifier_parm"])
    try:
        parsed = parse_truth(rm["ground_truth"], normalized=normalized, size=None if normalized else orig)
    except BoxError as err:
        raise SkipSample("bad_boxes", str(err)) from err
    if not normalized and size != orig:
        boxes = rescale(parsed.boxes, orig, size)
        rm["ground_truth"] = format_boxes(boxes, bare=parsed.bare, tagged=parsed.tagged)
    return rm
