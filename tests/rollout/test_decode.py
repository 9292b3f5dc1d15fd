"""Our own decoding loop (`rollout/decode.py`) samples exactly what transformers' `generate` loop samples.

The HF engine's training path (shared prefill + inverse-CDF sampler) decodes in `decode` by default;
`own_decode=False` keeps `model.generate`. Same seed -> the same tokens and the same recorded log-probs,
bit for bit, whether rows run to `max_new_tokens` or stop early (some rows early, or all of them, which ends
the loop), and the loop is what actually ran.
"""

from __future__ import annotations

import pytest
import torch

from lit_triune.rollout import decode as decode_module
from lit_triune.rollout.base import SamplingConfig
from lit_triune.rollout.hf_engine import HFGenerateEngine
from lit_triune.rollout.vision_tokens import stop_token_ids


def _both(model, processor, prompts, images, sampling):
    ours = HFGenerateEngine(model, processor).generate(prompts, images, sampling)
    hf = HFGenerateEngine(model, processor, own_decode=False).generate(prompts, images, sampling)
    return ours, hf


def _assert_same(ours, hf):
    assert ours.completion_ids == hf.completion_ids
    assert ours.sampling_logprobs == hf.sampling_logprobs  # exact: the same arithmetic, step by step
    assert torch.equal(ours.truncated, hf.truncated)
    assert ours.texts == hf.texts


@pytest.fixture
def count_decode_calls(monkeypatch):
    calls = []
    real = decode_module.decode

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("lit_triune.rollout.hf_engine.decode", counted)
    return calls


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_own_loop_samples_what_generate_samples(hf_model, tiny_processor, image_batch, temperature,
                                                count_decode_calls):
    prompts, images = image_batch  # two prompts of different lengths: left padding and two rope deltas
    sampling = SamplingConfig(n=4, max_new_tokens=14, temperature=temperature, seed=11)
    ours, hf = _both(hf_model, tiny_processor, prompts, images, sampling)
    assert len(count_decode_calls) == 1  # the engine's default path really is the own loop
    assert any(len(ids) == 14 for ids in ours.completion_ids)
    _assert_same(ours, hf)


def _boost_stop(model, tokenizer, amount: float):
    """A forward hook that favours the stop token by `amount` logits (rows stop at varied steps)."""
    stop = stop_token_ids(tokenizer)[0]

    def hook(_module, _inputs, logits):
        logits = logits.clone()
        logits[..., stop] += amount
        return logits

    return model.lm_head.register_forward_hook(hook)


@pytest.mark.parametrize("boost", [4.0, 40.0])
def test_rows_that_stop_early_match_and_a_stopped_batch_ends_the_loop(hf_model, tiny_processor, image_batch,
                                                                      boost, count_decode_calls):
    prompts, images = image_batch
    stops = set(stop_token_ids(tiny_processor.tokenizer))
    sampling = SamplingConfig(n=6, max_new_tokens=12, temperature=1.0, seed=5)
    handle = _boost_stop(hf_model, tiny_processor.tokenizer, boost)
    try:
        ours, hf = _both(hf_model, tiny_processor, prompts, images, sampling)
    finally:
        handle.remove()
    _assert_same(ours, hf)
    lengths = [len(ids) for ids in ours.completion_ids]
    assert all(ids[-1] in stops for ids, cut in zip(ours.completion_ids, ours.truncated.tolist(), strict=True)
               if not cut)
    if boost == 4.0:  # some rows stop early, others later: the finished ones are padded, then cut
        assert len(set(lengths)) > 1 and not ours.truncated.all()
    else:  # every row stops at its first token: one decoding step, not 12
        assert lengths == [1] * 12
        calls = []
        counter = hf_model.model.language_model.register_forward_hook(lambda *_: calls.append(1))
        handle = _boost_stop(hf_model, tiny_processor.tokenizer, boost)
        try:
            HFGenerateEngine(hf_model, tiny_processor).generate(prompts, images, sampling)
        finally:
            handle.remove()
            counter.remove()
        assert len(calls) == 2  # the prompts' prefill, then one step


def test_other_paths_keep_hf_generate(hf_model, tiny_processor, image_batch, count_decode_calls):
    prompts, images = image_batch
    engine = HFGenerateEngine(hf_model, tiny_processor)
    engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=4, temperature=0.0))  # greedy
    engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=4, top_k=5, seed=0))  # filtering
    HFGenerateEngine(hf_model, tiny_processor, fast_sampler=False).generate(
        prompts, images, SamplingConfig(n=2, max_new_tokens=4, seed=0))
    assert count_decode_calls == []
