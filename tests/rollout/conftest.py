"""Shared inputs of the rollout tests: the tiny policy in transformers and two image prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image


def chat_prompt(processor, text: str, image: bool = True) -> str:
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


@pytest.fixture(scope="session")
def make_prompt(tiny_processor):
    """`make_prompt(text, image=True)`: a chat-templated user turn ready for generation."""
    return lambda text, image=True: chat_prompt(tiny_processor, text, image)


@pytest.fixture(scope="module")
def hf_model(tiny_model_path: Path):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_path, dtype=torch.float32)
    return model.eval()


@pytest.fixture(scope="module")
def image_batch(tiny_processor) -> tuple[list[str], list[Image.Image]]:
    """Two prompts with images of different shapes (16 and 15 visual tokens), so rows differ in length."""
    prompts = [
        chat_prompt(tiny_processor, "How many squares are in the image?"),
        chat_prompt(tiny_processor, "What colour?"),
    ]
    images = [Image.new("RGB", (112, 112), (220, 30, 30)), Image.new("RGB", (84, 140), (30, 30, 220))]
    return prompts, images
