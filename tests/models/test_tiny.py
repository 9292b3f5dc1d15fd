"""The tiny Qwen2.5-VL factory: deterministic, offline, a Qwen-like tokenizer, loadable and usable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from lit_triune.models.tiny import build_tiny_model, preset_names


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_deterministic(tmp_path: Path):
    a = build_tiny_model("tiny", cache_dir=tmp_path / "a")
    b = build_tiny_model("tiny", cache_dir=tmp_path / "b")
    assert a != b and a.name == b.name
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).exists(), name
        assert _digest(a / name) == _digest(b / name), f"{name} differs between two builds"
    assert build_tiny_model("tiny", cache_dir=tmp_path / "a") == a  # cached: not rebuilt


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="available"):
        build_tiny_model("huge")
    assert {"tiny", "small"} <= set(preset_names())


def test_tokenizer_keeps_reasoning_tags_and_drops_control_tokens(tiny_processor):
    tok = tiny_processor.tokenizer
    text = "<think>two plus one</think><answer>3</answer><|im_end|>"
    decoded = tok.decode(tok.encode(text, add_special_tokens=False), skip_special_tokens=True)
    assert decoded == "<think>two plus one</think><answer>3</answer>"
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert len(tok.encode(tag, add_special_tokens=False)) == 1, tag  # one token each
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|image_pad|>", "<|vision_start|>"):
        assert special in tok.all_special_tokens or special in tok.get_vocab(), special
        assert tok.decode(tok.encode(special, add_special_tokens=False), skip_special_tokens=True) == ""


def test_digits_split_one_per_token(tiny_processor):
    tok = tiny_processor.tokenizer
    ids = tok.encode("12345", add_special_tokens=False)
    assert [tok.decode([i]) for i in ids] == ["1", "2", "3", "4", "5"]


def test_chat_template_renders_qwen_style(tiny_processor):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    text = tiny_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_loads_with_auto_classes_and_generates_from_an_image(tiny_model_path: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_path)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_path).eval()
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], images=[Image.new("RGB", (112, 112), (0, 200, 0))], return_tensors="pt")
    image_token = model.config.image_token_id
    assert int((inputs["input_ids"] == image_token).sum()) == 16  # 112 px -> 8x8 patches -> 16 tokens
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    assert out.shape[0] == 1 and prompt_len < out.shape[1] <= prompt_len + 5
