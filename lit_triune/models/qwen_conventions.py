"""`tiny-qwen-conventions`: a test-size random-init Qwen2.5-VL with the real model's conventions.

The tiny presets (`models/tiny.py`) use our own tokenizer, in which the reasoning tags are single tokens.
This one is built so that what a real Qwen2.5-VL-3B-Instruct checkpoint does differently reaches the
tests, offline and deterministically:

- config: `real_configs/Qwen2.5-VL-3B-Instruct.json` with only the sizes reduced. Kept as in 3B: head
  dims (text 128, so `mrope_section` stays [16, 24, 24]; vision 80), silu, rms_norm_eps, rope_theta,
  max_position_embeddings, patch 14 / merge 2 / temporal patch 2, window 112, the full-attention
  blocks closing each group of windowed ones (3B: 7, 15, 23, 31 of 32; here 1, 3 of 4),
  `tie_word_embeddings` (true in 3B), and an embedding padded past the tokenizer (3B: 151936 rows
  for 151665 tokens; here to a multiple of 128), so a random policy can sample ids no token has;
- tokenizer and chat template: `models/qwen_tokenizer.py`, `models/qwen_chat_template.py`;
- processor: the real `preprocessor_config.json` bounds (min_pixels 3136, max_pixels 12845056) and
  CLIP mean/std;
- generation config: the real one's fields (eos [<|im_end|>, <|endoftext|>], pad and bos
  <|endoftext|>, do_sample, repetition_penalty 1.05, temperature 1e-6), which the engines must not
  inherit: RL samples with its own settings.

Not kept: depth and width (2 text layers of hidden 256, 4 vision blocks of hidden 160), the GQA ratio
(16:2 in 3B, 2:1 here), bf16 (fp32 here, so engine and trainer log-probs agree to ~1e-6), the weights,
and the absolute token ids (see `models/qwen_tokenizer.py`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from lit_triune.models.qwen_tokenizer import train_qwen_tokenizer
from lit_triune.models.tiny import CONVENTIONS_PRESET, build_once

BUILD_VERSION = 1  # bump when the build changes, so caches are rebuilt
REAL = "Qwen2.5-VL-3B-Instruct"
REAL_CONFIG = Path(__file__).parent / "real_configs" / f"{REAL}.json"  # the public config.json, kept in the repo
MIN_PIXELS, MAX_PIXELS = 3136, 12845056  # the real preprocessor_config.json: 56*56 .. 28*28*16384


@dataclass(frozen=True)
class ConventionSizes:
    """What is scaled down from the real config; everything else is read from it."""

    text_hidden: int = 256
    text_layers: int = 2
    text_heads: int = 2  # head_dim 128, as 3B
    text_kv_heads: int = 1
    text_intermediate: int = 1376  # 5.375 x hidden, as 3B (11008 / 2048)
    vision_hidden: int = 160
    vision_depth: int = 4
    vision_heads: int = 2  # head_dim 80, as 3B
    vision_intermediate: int = 428  # ~2.67 x hidden, as 3B (3420 / 1280)
    vision_group: int = 2  # full attention closes every group of this many blocks (3B: 8)
    vocab_bpe: int = 1024
    vocab_multiple: int = 128
    seed: int = 0


GENERATION_CONFIG = {"do_sample": True, "repetition_penalty": 1.05, "temperature": 1e-06}


def real_config() -> dict[str, Any]:
    return json.loads(REAL_CONFIG.read_text())


def conventions_config(s: ConventionSizes, tok: Any) -> Any:
    """The real 3B config with `s`'s sizes and this tokenizer's ids (same keys, same layout)."""
    from transformers import Qwen2_5_VLConfig

    ids = tok.convert_tokens_to_ids
    cfg = real_config()
    cfg.update(hidden_size=s.text_hidden, num_hidden_layers=s.text_layers, num_attention_heads=s.text_heads,
               num_key_value_heads=s.text_kv_heads, intermediate_size=s.text_intermediate,
               vocab_size=-(-len(tok) // s.vocab_multiple) * s.vocab_multiple,
               bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
               image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
               vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
               vision_token_id=ids("<|vision_pad|>"), torch_dtype="float32")
    cfg["vision_config"].update(
        depth=s.vision_depth, hidden_size=s.vision_hidden, num_heads=s.vision_heads,
        intermediate_size=s.vision_intermediate, out_hidden_size=s.text_hidden,
        fullatt_block_indexes=list(range(s.vision_group - 1, s.vision_depth, s.vision_group)))
    return Qwen2_5_VLConfig.from_dict(cfg)


def _write(s: ConventionSizes, out: Path) -> None:
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = train_qwen_tokenizer(s.vocab_bpe)
    config = conventions_config(s, tok)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        model = Qwen2_5_VLForConditionalGeneration(config).float()
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=tok.chat_template,
    )
    pad = tok.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config = GenerationConfig(
        bos_token_id=pad, pad_token_id=pad, eos_token_id=[tok.convert_tokens_to_ids("<|im_end|>"), pad],
        **GENERATION_CONFIG)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _fingerprint(s: ConventionSizes) -> str:
    blob = json.dumps({"v": BUILD_VERSION, "real": real_config(), **asdict(s)}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def build_conventions_model(cache_dir: str | Path | None = None, sizes: ConventionSizes | None = None) -> Path:
    """The checkpoint directory (built once per machine, atomically); loads with the Auto classes and vLLM."""
    s = sizes or ConventionSizes()
    return build_once(f"{CONVENTIONS_PRESET}-{_fingerprint(s)}", lambda out: _write(s, out), cache_dir)
