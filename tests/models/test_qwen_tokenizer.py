"""The conventions tokenizer behaves like the real Qwen2 / Qwen2.5-VL one where the trainer can tell."""

from __future__ import annotations

import pytest

from lit_triune.models.qwen_chat_template import QWEN25_VL_CHAT_TEMPLATE
from lit_triune.models.qwen_tokenizer import ADDED_TOKENS, EXTRA_SPECIAL_TOKENS, train_qwen_tokenizer

TAGS = ("<think>", "</think>", "<answer>", "</answer>")


@pytest.fixture(scope="module")
def tok(conventions_processor):
    return conventions_processor.tokenizer


def _pieces(tok, text: str) -> list[str]:
    return [tok.decode([i]) for i in tok.encode(text, add_special_tokens=False)]


def test_is_transformers_qwen2_tokenizer_with_the_real_pre_tokenizer(tok):
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    assert type(tok).__name__ == "Qwen2Tokenizer"
    # the real regex's number alternative is a lone \p{N}: one digit per pre-token (GPT-4's is \p{N}{1,3})
    assert r"|\p{N}|" in PRETOKENIZE_REGEX
    assert PRETOKENIZE_REGEX.replace("\\", "\\\\") in tok.backend_tokenizer.to_str().replace('\\"', '"')


@pytest.mark.parametrize("tag", TAGS)
def test_reasoning_tags_split_into_several_ordinary_tokens(tok, tag):
    ids = tok.encode(tag, add_special_tokens=False)
    assert len(ids) > 1, _pieces(tok, tag)
    assert tag not in tok.get_vocab() and tag not in tok.get_added_vocab()
    assert not set(ids) & set(tok.all_special_ids)
    assert "".join(_pieces(tok, tag)) == tag


def test_a_token_can_straddle_a_tag_and_its_neighbour(tok):
    """As in the real vocabulary, a piece may hold the end of the text and the start of a tag."""
    pieces = _pieces(tok, "<think>I count three shapes.</think><answer>3</answer>")
    assert ".</" in pieces or "></" in pieces, pieces


def test_digits_are_split_one_per_token_as_the_real_regex_does(tok):
    assert _pieces(tok, "12345") == ["1", "2", "3", "4", "5"]
    assert _pieces(tok, "[120, 34]")[:4] == ["[", "1", "2", "0"]


def test_added_tokens_follow_the_real_order_ids_and_flags(tok):
    first = tok.convert_tokens_to_ids("<|endoftext|>")
    for offset, (token, special) in enumerate(ADDED_TOKENS):
        assert tok.convert_tokens_to_ids(token) == first + offset, token  # real: 151643 + offset
        assert (token in tok.all_special_tokens) == special, token
    assert first == len(tok) - len(ADDED_TOKENS)  # after every BPE piece, as 151643 in the real vocab
    assert tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>"]) == [
        first + 1, first + 2, first + 9, first + 12]
    assert (tok.eos_token, tok.pad_token, tok.bos_token, tok.unk_token) == ("<|im_end|>", "<|endoftext|>", None, None)
    assert list(tok.extra_special_tokens) == EXTRA_SPECIAL_TOKENS
    assert tok.padding_side == "right" and tok.model_max_length == 131072


def test_decode_drops_control_tokens_and_keeps_tags_and_tool_tokens(tok):
    text = "<think>two plus one</think><answer>3</answer><|im_end|><|endoftext|>"
    assert tok.decode(tok.encode(text, add_special_tokens=False), skip_special_tokens=True) == (
        "<think>two plus one</think><answer>3</answer>")
    # <tool_call> is an added token that is not special in the real tokenizer: skip_special_tokens keeps it
    assert tok.decode(tok.encode("<tool_call>", add_special_tokens=False), skip_special_tokens=True) == "<tool_call>"
    assert len(tok.encode("<tool_call>", add_special_tokens=False)) == 1


def test_chat_template_renders_like_qwen25_vl(conventions_processor):
    assert conventions_processor.chat_template == QWEN25_VL_CHAT_TEMPLATE
    render = conventions_processor.apply_chat_template
    image_turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    assert render(image_turn, add_generation_prompt=True, tokenize=False) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many?<|im_end|>\n"
        "<|im_start|>assistant\n")
    two = [{"role": "system", "content": "Be brief."},
           {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Same?"}]},
           {"role": "assistant", "content": "<think>no</think><answer>no</answer>"}]
    assert render(two, tokenize=False, add_vision_id=True) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nPicture 1: <|vision_start|><|image_pad|><|vision_end|>"
        "Picture 2: <|vision_start|><|image_pad|><|vision_end|>Same?<|im_end|>\n"
        "<|im_start|>assistant\n<think>no</think><answer>no</answer><|im_end|>\n")


def test_training_is_deterministic():
    a, b = train_qwen_tokenizer(), train_qwen_tokenizer()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
