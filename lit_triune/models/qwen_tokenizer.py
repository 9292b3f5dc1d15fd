"""A small tokenizer with the real Qwen2 / Qwen2.5-VL conventions, trained here so nothing is downloaded.

What is the real one's (transformers' `Qwen2Tokenizer`, its `tokenizer_config.json`):
- the pipeline: NFC, then the Qwen2 pre-tokenizer regex (`PRETOKENIZE_REGEX`, imported, not restated),
  then byte-level BPE. The regex's `\\p{N}` alternative takes one digit at a time, so numbers are split
  into single digits (unlike GPT-4's `\\p{N}{1,3}`);
- the 22 added tokens in the real order after the BPE pieces (`<|endoftext|>` first, then
  `<|im_start|>`, `<|im_end|>`, ... `<|video_pad|>`, then the non-special tool/FIM tokens), with the
  real `special` flags; eos `<|im_end|>`, pad `<|endoftext|>`, no bos, no unk, right padding;
- `<think>`, `</think>`, `<answer>`, `</answer>` are NOT tokens: they split into several ordinary
  BPE pieces (`<think` + `>` here, `</` + `answer` + `>` ...), and a piece may straddle a tag and the
  text next to it (`.</`), as in the real vocabulary.

What is not: the BPE merges (~1,000 pieces trained on `tokenizer.training_corpus()` instead of
151,643), hence the absolute ids (the real `<|endoftext|>` is 151643, here it is the vocabulary size).
"""

from __future__ import annotations

import json

from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from lit_triune.models.qwen_chat_template import QWEN25_VL_CHAT_TEMPLATE
from lit_triune.models.tokenizer import training_corpus

# (token, special) in the real id order: ids len(BPE) + 0 ... len(BPE) + 21.
ADDED_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
]
# tokenizer_config.json's additional_special_tokens: every special added token but <|endoftext|> (the pad).
EXTRA_SPECIAL_TOKENS = [t for t, special in ADDED_TOKENS if special and t != "<|endoftext|>"]
MODEL_MAX_LENGTH = 131072  # tokenizer_config.json of Qwen2.5-VL-*-Instruct


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def _train_bpe(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """BPE vocabulary and merges learned through the real pipeline (deterministic: fixed corpus order)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], [tuple(m) for m in model["merges"]]


def train_qwen_tokenizer(vocab_size: int = 1024) -> PreTrainedTokenizerBase:  # noqa: F821
    """A `Qwen2Tokenizer` (transformers' own class, so its own pipeline) over a freshly trained BPE."""
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    vocab, merges = _train_bpe(vocab_size)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token=None,
                         pad_token=None, model_max_length=MODEL_MAX_LENGTH, clean_up_tokenization_spaces=False,
                         padding_side="right", split_special_tokens=False)
    for token, special in ADDED_TOKENS:  # one at a time: the ids follow this order
        tok.add_tokens([AddedToken(token, special=special, normalized=False)], special_tokens=special)
    tok.add_special_tokens({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                            "extra_special_tokens": EXTRA_SPECIAL_TOKENS})
    tok.chat_template = QWEN25_VL_CHAT_TEMPLATE
    return tok
