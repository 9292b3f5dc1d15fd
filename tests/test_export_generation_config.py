"""lit_triune/export.py's generation config: the exported policy decodes greedily in transformers, whatever the
checkpoint it came from sampled with; its stop and pad tokens are kept. (The export itself: tests/rl/test_export.py,
tests/test_hf_copy.py.)"""

from __future__ import annotations

from transformers import GenerationConfig

from lit_triune.export import VLLM_CPU_HINT, greedy_generation_config


def test_greedy_generation_config_keeps_tokens_and_drops_sampling() -> None:
    # what Qwen2.5-VL-7B-Instruct ships, roughly: sampling settings a greedy config must not carry
    qwen = GenerationConfig(bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643, do_sample=True,
                            temperature=0.1, top_k=1, top_p=0.001, repetition_penalty=1.05)
    greedy = greedy_generation_config(qwen)
    assert greedy.do_sample is False
    assert (greedy.bos_token_id, greedy.eos_token_id, greedy.pad_token_id) == (151643, [151645, 151643], 151643)
    diff = greedy.to_diff_dict()  # what generation_config.json holds
    assert not {"temperature", "top_k", "top_p", "repetition_penalty", "max_length"} & diff.keys()
    greedy.validate(strict=True)  # save_pretrained validates strictly: no sampling flag on a greedy config
    assert greedy_generation_config(GenerationConfig(max_new_tokens=64)).max_new_tokens == 64


def test_the_vllm_hint_names_the_kv_cache_setting() -> None:
    assert "kv_cache_memory_bytes" in VLLM_CPU_HINT and "temperature=0" in VLLM_CPU_HINT
