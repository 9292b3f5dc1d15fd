"""HFGenerateEngine: shapes and flags, sampling log-probs equal the trainer's recompute, greedy is
deterministic, nothing leaks in from the checkpoint's generation config, vision tokens are never sampled."""

from __future__ import annotations

import copy

import pytest
import torch

from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
from lit_triune.rl.logprobs import completion_logprobs
from lit_triune.rollout.base import Rollout, RolloutEngine, SamplingConfig
from lit_triune.rollout.hf_engine import HFGenerateEngine
from lit_triune.rollout.vision_tokens import VISION_TOKENS, assemble_rollout, stop_token_ids, vision_token_ids


def _recompute(
    model, processor, prompts, images, rollout: Rollout, temperature: float
) -> torch.Tensor:  # [N, T]
    tok = processor.tokenizer
    enc = encode_prompts(processor, prompts, images)
    inputs = build_policy_inputs(
        model,
        enc,
        rollout.completion_ids,
        rollout.prompt_index,
        tok.pad_token_id,
        model.config.image_token_id,
    )
    with torch.no_grad():
        return completion_logprobs(model, inputs, temperature=temperature)


def _padded(rows: list[list[float]], t: int) -> torch.Tensor:  # [N, T]
    out = torch.zeros(len(rows), t)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def test_engine_satisfies_protocol(hf_model, tiny_processor):
    assert isinstance(HFGenerateEngine(hf_model, tiny_processor), RolloutEngine)


def test_shapes_flags_and_stop_handling(hf_model, tiny_processor, image_batch):
    prompts, images = image_batch
    engine = HFGenerateEngine(hf_model, tiny_processor)
    r = engine.generate(prompts, images, SamplingConfig(n=3, max_new_tokens=12, seed=0))
    stops = set(stop_token_ids(tiny_processor.tokenizer))
    assert r.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]  # prompt-major
    assert r.truncated.dtype == torch.bool and r.truncated.shape == (6,)
    assert r.spurious_vision_tokens.dtype == torch.long and r.spurious_vision_tokens.tolist() == [0] * 6
    assert len(r.completion_ids) == len(r.texts) == len(r.sampling_logprobs) == 6
    for ids, lps, truncated, text in zip(
        r.completion_ids, r.sampling_logprobs, r.truncated.tolist(), r.texts, strict=True
    ):
        assert 1 <= len(ids) <= 12 and len(lps) == len(ids)
        assert not any(t in stops for t in ids[:-1])  # nothing (no padding) after the first stop
        assert truncated == (ids[-1] not in stops)
        if truncated:
            assert len(ids) == 12
        assert text == tiny_processor.tokenizer.decode(ids, skip_special_tokens=True)
        assert all(lp <= 0.0 for lp in lps)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logprobs_equal_trainer_recompute(hf_model, tiny_processor, image_batch, temperature):
    prompts, images = image_batch
    engine = HFGenerateEngine(hf_model, tiny_processor)
    r = engine.generate(
        prompts, images, SamplingConfig(n=4, max_new_tokens=16, temperature=temperature, seed=3)
    )
    recomputed = _recompute(hf_model, tiny_processor, prompts, images, r, temperature)  # [N, T]
    sampled = _padded(r.sampling_logprobs, recomputed.shape[1])
    torch.testing.assert_close(sampled, recomputed, atol=1e-5, rtol=0)


def test_greedy_is_deterministic_and_seed_reproducible(hf_model, tiny_processor, image_batch):
    prompts, images = image_batch
    engine = HFGenerateEngine(hf_model, tiny_processor)
    greedy = [
        engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=10, temperature=0.0, seed=s))
        for s in (0, 1)
    ]
    assert greedy[0].completion_ids == greedy[1].completion_ids
    assert greedy[0].completion_ids[0] == greedy[0].completion_ids[1]  # both rows of a group identical
    sampled = [
        engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=10, seed=7)) for _ in range(2)
    ]
    assert sampled[0].completion_ids == sampled[1].completion_ids


def test_checkpoint_generation_config_does_not_leak(hf_model, tiny_processor, image_batch):
    """A real Qwen2.5-VL-Instruct ships top_k=1 / tiny top_p; our top_k=0, top_p=1 must win."""
    prompts, images = image_batch
    model = copy.deepcopy(hf_model)
    model.generation_config.top_k = 1
    model.generation_config.top_p = 0.001
    model.generation_config.repetition_penalty = 1.5
    r = HFGenerateEngine(model, tiny_processor).generate(
        prompts[:1], images[:1], SamplingConfig(n=6, max_new_tokens=6, seed=0)
    )
    assert len({tuple(ids) for ids in r.completion_ids}) > 1  # with top_k=1 all six would be equal
    assert model.generation_config.top_k == 1  # restored after the call


def test_modes_restored_and_no_grad(hf_model, tiny_processor, image_batch):
    prompts, images = image_batch
    model = copy.deepcopy(hf_model)
    model.train()
    model.model.visual.eval()  # a frozen tower stays in eval mode
    HFGenerateEngine(model, tiny_processor).generate(
        prompts, images, SamplingConfig(n=1, max_new_tokens=4, seed=0)
    )
    assert model.training and model.model.language_model.training
    assert not model.model.visual.training and not any(m.training for m in model.model.visual.modules())


def _bias_toward_vision(model, tokenizer, bias: float = 30.0):
    """A policy that wants `<|image_pad|>` etc. above everything: forces the mask to do the work."""
    ids = torch.tensor(vision_token_ids(tokenizer))

    def hook(_module, _inputs, logits):  # [.., V]
        logits = logits.clone()
        logits[..., ids] += bias
        return logits

    return model.lm_head.register_forward_hook(hook)


def test_vision_tokens_never_sampled_even_when_preferred(hf_model, tiny_processor, image_batch, make_prompt):
    prompts, images = image_batch
    tok = tiny_processor.tokenizer
    vision = set(vision_token_ids(tok))
    assert len(vision) == len(VISION_TOKENS)
    model = copy.deepcopy(hf_model)
    handle = _bias_toward_vision(model, tok)
    try:
        for temperature in (1.0, 0.0):
            r = HFGenerateEngine(model, tiny_processor).generate(
                prompts, images, SamplingConfig(n=4, max_new_tokens=12, temperature=temperature, seed=0)
            )
            assert not any(t in vision for ids in r.completion_ids for t in ids)
            assert r.spurious_vision_tokens.sum() == 0
        # Unmasked, the biased policy samples them (text prompts, so generation itself survives):
        text_prompts = [make_prompt("Say something.", image=False)] * 2
        r = HFGenerateEngine(model, tiny_processor, mask_vision_tokens=False).generate(
            text_prompts, [None, None], SamplingConfig(n=2, max_new_tokens=8, seed=0)
        )
    finally:
        handle.remove()
    assert r.spurious_vision_tokens.sum() > 0  # counted ...
    assert not any(t in vision for ids in r.completion_ids for t in ids)  # ... and removed from ids,
    assert all(
        len(lp) == len(ids) for lp, ids in zip(r.sampling_logprobs, r.completion_ids, strict=True)
    )  # log-probs,
    assert not any(v in text for v in VISION_TOKENS for text in r.texts)  # and text


def test_assemble_rollout_cuts_counts_and_aligns(tiny_processor):
    tok = tiny_processor.tokenizer
    im_end, pad, image_pad = (
        tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>", "<|image_pad|>")
    )
    a, b = tok.encode("<answer>", add_special_tokens=False)[0], tok.encode("3", add_special_tokens=False)[0]
    raw = [[a, image_pad, b, im_end, pad, pad], [a, b, b, b, b, b], [image_pad, image_pad, pad, a, a, a]]
    lps = [[-0.1, -0.2, -0.3, -0.4, -9.0, -9.0], [-1.0] * 6, [-0.5, -0.6, -0.7, -9.0, -9.0, -9.0]]
    r = assemble_rollout(
        tok, raw, lps, torch.tensor([0, 0, 1]), stops=[im_end, pad], vision_ids=vision_token_ids(tok)
    )
    assert r.completion_ids == [[a, b, im_end], [a, b, b, b, b, b], [pad]]
    assert r.sampling_logprobs == [pytest.approx([-0.1, -0.3, -0.4]), [-1.0] * 6, pytest.approx([-0.7])]
    assert r.truncated.tolist() == [False, True, False]
    assert r.spurious_vision_tokens.tolist() == [1, 0, 2]
    assert r.texts[0] == "<answer>3"  # reasoning tags survive skip_special_tokens; vision/stop tokens do not


def test_chunks_are_lazy_and_reassemble(hf_model, tiny_processor, image_batch):
    """The overlap contract: chunk k is handed out before chunk k+1 is generated."""
    prompts, images = image_batch
    prompts, images = prompts + prompts[:1], images + images[:1]  # B = 3
    engine = HFGenerateEngine(hf_model, tiny_processor, chunk_size=2)
    calls = []
    original = engine._generate_on  # one call per chunk: prefill and decoding of its rows
    engine._generate_on = lambda *a, **k: calls.append(1) or original(*a, **k)
    sampling = SamplingConfig(n=2, max_new_tokens=5, seed=0)
    chunks = engine.generate_chunks(prompts, images, sampling)
    rows, part = next(chunks)
    assert len(calls) == 1 and rows.tolist() == [0, 1, 2, 3] and part.prompt_index.tolist() == [0, 0, 1, 1]
    rows, part = next(chunks)
    assert len(calls) == 2 and rows.tolist() == [4, 5] and part.prompt_index.tolist() == [2, 2]
    assert next(chunks, None) is None
    seen = []
    full = engine.generate(prompts, images, sampling, on_chunk=lambda rows, part: seen.append(rows.tolist()))
    assert seen == [[0, 1, 2, 3], [4, 5]]
    assert full.prompt_index.tolist() == [0, 0, 1, 1, 2, 2] and len(full.completion_ids) == 6


def test_length_keys_give_one_call_per_key_and_rows_in_prompt_order(hf_model, tiny_processor, image_batch):
    """Prompts of one key (the trainer passes the data source) share a `model.generate` call, so short answers
    do not wait for long ones; the rollout comes back prompt-major as without keys, each row the greedy
    completion of its own prompt."""
    prompts, images = image_batch
    prompts = [prompts[0], prompts[1], prompts[0], prompts[1]]  # B = 4, keys a b a b
    images = [images[0], images[1], images[0], images[1]]
    keys = ["a", "b", "a", "b"]
    model = copy.deepcopy(hf_model)
    calls = []
    original = model.generate
    model.generate = lambda *a, **k: calls.append(k["input_ids"].shape[0]) or original(*a, **k)
    engine = HFGenerateEngine(model, tiny_processor)
    greedy = SamplingConfig(n=2, max_new_tokens=6, temperature=0.0, seed=0)
    seen = []
    r = engine.generate(prompts, images, greedy, length_keys=keys,
                        on_chunk=lambda rows, part: seen.append((rows.tolist(), part.prompt_index.tolist())))
    assert calls == [2, 2]  # one call per key, two prompts each
    assert seen == [([0, 1, 4, 5], [0, 0, 2, 2]), ([2, 3, 6, 7], [1, 1, 3, 3])]
    assert r.prompt_index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    plain = engine.generate(prompts, images, greedy)  # one call for all four prompts
    assert r.texts == plain.texts and r.completion_ids == plain.completion_ids
    sampled = SamplingConfig(n=2, max_new_tokens=6, seed=3)
    a, b = (engine.generate(prompts, images, sampled, length_keys=keys) for _ in range(2))
    assert a.completion_ids == b.completion_ids  # reproducible
    assert all(len(lp) == len(ids) for lp, ids in zip(a.sampling_logprobs, a.completion_ids, strict=True))
    with pytest.raises(ValueError, match="3 length_keys for 4 prompts"):
        engine.generate(prompts, images, greedy, length_keys=keys[:3])


def test_engines_without_splitting_ignore_length_keys(hf_model, tiny_processor, image_batch):
    prompts, images = image_batch
    engine = HFGenerateEngine(hf_model, tiny_processor)
    engine.split_by_length_key = False  # what vLLM's engine declares: it drops finished rows itself
    seen = []
    engine.generate(prompts, images, SamplingConfig(n=1, max_new_tokens=3, seed=0), length_keys=["a", "b"],
                    on_chunk=lambda rows, part: seen.append(rows.tolist()))
    assert seen == [[0, 1]]


def test_no_length_split_under_fsdp(hf_model, tiny_processor, monkeypatch):
    """FSDP ranks must make the same number of generate calls; their batches hold different sources."""
    import lit_triune.rollout.hf_engine as hf_engine

    engine = HFGenerateEngine(hf_model, tiny_processor)
    assert engine._splits_by_length_key()
    monkeypatch.setattr(hf_engine, "fsdp_root", lambda model: model)  # what an FSDP-wrapped policy gives
    assert not engine._splits_by_length_key()
    assert engine._blocks(3, ["a", "b", "a"]) == [[0, 1, 2]]


def test_clear_errors(hf_model, tiny_processor, image_batch):
    prompts, images = image_batch
    engine = HFGenerateEngine(hf_model, tiny_processor)
    with pytest.raises(ValueError, match="2 prompts but 1 images"):
        engine.generate(prompts, images[:1], SamplingConfig(n=1))
    with pytest.raises(ValueError, match="group size"):
        engine.generate(prompts, images, SamplingConfig(n=0))
    with pytest.raises(ValueError, match="top_p"):
        engine.generate(prompts, images, SamplingConfig(n=1, top_p=0.0))
    with pytest.raises(ValueError, match="chunk_size"):
        HFGenerateEngine(hf_model, tiny_processor, chunk_size=0)
    with pytest.raises(RuntimeError, match="bind"):
        HFGenerateEngine().generate(prompts, images, SamplingConfig(n=1))
