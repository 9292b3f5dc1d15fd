"""`tiny-qwen-conventions`: the real 3B config's structure at test size, the real processor and generation
config, and hand-made completions whose reasoning tags are split across tokens going through the same
cut / clean / decode / score path the engines use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lit_triune.models.qwen_conventions import MAX_PIXELS, MIN_PIXELS, real_config
from lit_triune.models.tiny import CONVENTIONS_PRESET, preset_names
from lit_triune.rewards.scoring import score
from lit_triune.rollout.vision_tokens import assemble_rollout, stop_token_ids, vision_token_ids

COUNT3 = {"verifier": "counting", "ground_truth": "3", "accuracy_ratio": 1.0, "format_ratio": 0.1}


def _config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def test_preset_is_registered():
    from lit_triune.models.paths import resolve_model_path

    assert CONVENTIONS_PRESET in preset_names()
    assert Path(resolve_model_path(CONVENTIONS_PRESET)).name.startswith(CONVENTIONS_PRESET)


@pytest.mark.slow
def test_build_is_deterministic(tmp_path: Path):
    import hashlib

    from lit_triune.models.qwen_conventions import build_conventions_model

    a, b = build_conventions_model(tmp_path / "a"), build_conventions_model(tmp_path / "b")
    assert a.name == b.name
    for name in ("model.safetensors", "tokenizer.json", "config.json", "generation_config.json", "chat_template.jinja"):
        assert hashlib.sha256((a / name).read_bytes()).digest() == hashlib.sha256((b / name).read_bytes()).digest(), name


def test_config_keeps_the_real_structure(conventions_model_path: Path):
    from transformers import AutoConfig

    real, ours = AutoConfig.for_model(**real_config()), AutoConfig.from_pretrained(conventions_model_path)
    assert set(_config(conventions_model_path)["text_config"]) >= {"rope_parameters", "max_window_layers"}
    t, rt = ours.text_config, real.text_config
    assert t.hidden_size // t.num_attention_heads == rt.hidden_size // rt.num_attention_heads == 128
    assert t.rope_parameters["mrope_section"] == rt.rope_parameters["mrope_section"] == [16, 24, 24]
    for key in ("hidden_act", "rms_norm_eps", "max_position_embeddings", "use_sliding_window"):
        assert getattr(t, key) == getattr(rt, key), key
    assert t.rope_parameters["rope_theta"] == rt.rope_parameters["rope_theta"]
    assert ours.tie_word_embeddings is real.tie_word_embeddings is True
    v, rv = ours.vision_config, real.vision_config
    assert v.hidden_size // v.num_heads == rv.hidden_size // rv.num_heads == 80
    for key in ("patch_size", "spatial_merge_size", "temporal_patch_size", "window_size", "tokens_per_second",
                "hidden_act"):
        assert getattr(v, key) == getattr(rv, key), key
    # full attention closes each group of windowed blocks, the last block included (3B: 7, 15, 23, 31)
    assert rv.fullatt_block_indexes[-1] == rv.depth - 1 and v.fullatt_block_indexes[-1] == v.depth - 1
    assert len(v.fullatt_block_indexes) > 1 and v.out_hidden_size == t.hidden_size


def test_vocab_and_token_ids_match_the_tokenizer(conventions_model_path: Path, conventions_processor):
    from transformers import AutoConfig

    tok, cfg = conventions_processor.tokenizer, AutoConfig.from_pretrained(conventions_model_path)
    assert cfg.text_config.vocab_size > len(tok)  # padded past the tokenizer, as 151936 > 151665
    ids = tok.convert_tokens_to_ids
    assert (cfg.image_token_id, cfg.video_token_id) == (ids("<|image_pad|>"), ids("<|video_pad|>"))
    assert (cfg.vision_start_token_id, cfg.vision_end_token_id) == (ids("<|vision_start|>"), ids("<|vision_end|>"))
    assert (cfg.text_config.bos_token_id, cfg.text_config.eos_token_id) == (ids("<|endoftext|>"), ids("<|im_end|>"))


def test_processor_and_generation_config_are_the_real_ones(conventions_model_path: Path, conventions_processor):
    from transformers import GenerationConfig

    ip = conventions_processor.image_processor
    assert (ip.size["shortest_edge"], ip.size["longest_edge"]) == (MIN_PIXELS, MAX_PIXELS) == (3136, 12845056)
    assert (ip.patch_size, ip.merge_size, ip.temporal_patch_size) == (14, 2, 2)
    gen, tok = GenerationConfig.from_pretrained(conventions_model_path), conventions_processor.tokenizer
    end, im_end = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    assert gen.eos_token_id == [im_end, end] and gen.pad_token_id == gen.bos_token_id == end
    assert gen.repetition_penalty == 1.05 and gen.do_sample
    assert set(stop_token_ids(tok)) == {im_end, end}


def test_model_loads_and_a_112px_image_is_16_tokens(conventions_model_path: Path, conventions_processor):
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(conventions_model_path).eval()
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied, as 3B
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]}]
    prompt = conventions_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = conventions_processor(text=[prompt], images=[Image.new("RGB", (112, 112))], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16
    with torch.no_grad():
        logits = model(**inputs).logits  # [1, L, V]
    assert logits.shape[-1] == model.config.text_config.vocab_size


# -- hand-made completions: tags split across tokens ---------------------------------------------------


def _ids(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def _rollout(tok, rows: list[list[int]]):
    return assemble_rollout(tok, rows, None, torch.zeros(len(rows), dtype=torch.long), stops=stop_token_ids(tok),
                            vision_ids=vision_token_ids(tok))


def test_split_tags_are_cut_decoded_and_scored_like_single_ones(conventions_processor):
    tok = conventions_processor.tokenizer
    end, im_end, image_pad = (tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>"))
    answer = "<think>I count the shapes.</think><answer>3</answer>"
    close = _ids(tok, "</answer>")
    assert len(close) > 1
    spurious = _ids(tok, "<think>I count the shapes.</think><answer>3") + close[:1] + [image_pad] + close[1:]
    rows = [
        _ids(tok, answer) + [im_end, end, end],  # stops at <|im_end|>; the padding after it is cut
        _ids(tok, answer) + [end],  # <|endoftext|> stops too (generation_config's second eos)
        _ids(tok, "<think>I count the shapes.</think><answer>3</ans"),  # max_new_tokens hit inside a tag
        spurious + [im_end],  # a vision token sampled between two pieces of a tag
        _ids(tok, "<think>") + [len(tok) + 3] + _ids(tok, "ok</think><answer>3</answer>") + [im_end],  # id no token has
    ]
    r = _rollout(tok, rows)
    assert r.texts[:2] == [answer, answer] and r.truncated.tolist() == [False, False, True, False, False]
    assert [len(ids) for ids in r.completion_ids[:2]] == [len(_ids(tok, answer)) + 1] * 2  # stop token kept
    assert r.texts[2] == "<think>I count the shapes.</think><answer>3</ans"
    assert r.texts[3] == answer and r.spurious_vision_tokens.tolist() == [0, 0, 0, 1, 0]
    assert image_pad not in r.completion_ids[3]
    assert r.texts[4] == "<think>ok</think><answer>3</answer>"  # padded-vocab ids decode to nothing
    scores = [score(t, COUNT3) for t in r.texts]
    assert [s["format"] for s in scores] == [1.0, 1.0, 0.75, 1.0, 1.0]
    assert [s["accuracy"] for s in scores] == [1.0] * 5


def test_box_answers_with_split_digits_score(conventions_processor):
    tok = conventions_processor.tokenizer
    text = "<think>I find the red circle.</think><answer>[10, 20, 50, 60]</answer>"
    assert "1" in [tok.decode([i]) for i in _ids(tok, text)]  # digits one per token
    r = _rollout(tok, [_ids(tok, text) + [tok.convert_tokens_to_ids("<|im_end|>")]])
    spec = {"verifier": "grounding", "ground_truth": "[10, 20, 50, 60]", "verifier_parm": {"normalized": False}}
    s = score(r.texts[0], spec, image_size=(112, 112), iou_threshold=0.5)
    assert (s["accuracy"], s["format"], s["iou"]) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("style", ["tags_newline"])
def test_newline_tag_format_survives_the_round_trip(conventions_processor, style):
    tok = conventions_processor.tokenizer
    text = "<think>\nstep\n</think>\n<answer>\n\\boxed{2}\n</answer>"
    r = _rollout(tok, [_ids(tok, text) + [tok.convert_tokens_to_ids("<|im_end|>")]])
    from lit_triune.rewards.format import format_reward

    assert r.texts[0] == text and format_reward(r.texts[0], style) == 1.0


def test_warm_start_targets_tokenize_with_split_tags(conventions_model_path: Path, conventions_processor):
    """The warm-start's targets are the SFT text + <|im_end|>: with split tags they are longer, and the
    decoded completion is the target again (what the format reward then reads)."""
    from types import SimpleNamespace

    from transformers import AutoModelForImageTextToText

    from lit_triune.rl.warm_start import target_inputs

    model = AutoModelForImageTextToText.from_pretrained(conventions_model_path).eval()
    tok = conventions_processor.tokenizer
    messages = [{"role": "user", "content": "How many?"}]
    prompt = conventions_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    target = "<think>I count.</think><answer>3</answer>"
    batch = SimpleNamespace(prompts=[prompt], images=[None], sft_targets=[target])
    inputs = target_inputs(model, conventions_processor, batch)
    ids = inputs.completion_ids[0][inputs.completion_mask[0]].tolist()
    assert ids[-1] == tok.convert_tokens_to_ids("<|im_end|>") and len(ids) > 8
    assert _rollout(tok, [ids]).texts == [target]
