"""The speed paths of issue 7 compute exactly what the plain paths compute.

- `completion_logprobs(shared_prefix=True)`: each prompt once, completions per row -> same log-probs and
  gradients as full rows (frozen ViT with cached features, and a trainable ViT).
- `HFGenerateEngine(share_prompt_prefill=True)`: one prefill per prompt -> same tokens and log-probs.
- `HFGenerateEngine(fast_sampler=True)`: inverse-CDF draws follow softmax(logits / T) without the vision
  tokens (frequencies of a peaked first-token distribution).
- `generate(..., encoded=...)` with precomputed frozen-ViT features -> same tokens as pixels.
- `EncodedPrompts.select` / `concat` keep prompts, patches and features together.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from PIL import Image

from lit_triune.models.policy_inputs import EncodedPrompts, build_policy_inputs, encode_prompts
from lit_triune.models.vision import image_features
from lit_triune.rl import policy as policy_lib
from lit_triune.rl.logprobs import completion_logprobs
from lit_triune.rollout.base import SamplingConfig
from lit_triune.rollout.hf_engine import HFGenerateEngine


def _prompt(processor, text: str) -> str:
    return processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
        add_generation_prompt=True, tokenize=False,
    )


@pytest.fixture(scope="module")
def setup(tiny_model_path, tiny_processor):
    model = policy_lib.load_policy(str(tiny_model_path))
    prompts = [_prompt(tiny_processor, "How many squares are in the image?"), _prompt(tiny_processor, "Colour?"),
               _prompt(tiny_processor, "Read the text in the image, please.")]
    images = [Image.new("RGB", (112, 112), (220, 30, 30)), Image.new("RGB", (84, 140), (30, 30, 220)),
              Image.new("RGB", (56, 112), (30, 200, 30))]
    return model, tiny_processor, prompts, images


def _inputs(model, processor, enc, g: int, pixels: bool = True):
    # completions of different lengths (1..9 tokens), some ending with the stop token
    gen = torch.Generator().manual_seed(0)
    stop = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    completions = []
    for i in range(len(enc) * g):
        ids = torch.randint(10, 900, (1 + (i * 5) % 9,), generator=gen).tolist()
        completions.append(ids + [stop] if i % 3 == 0 else ids)
    index = torch.arange(len(enc)).repeat_interleave(g)
    return build_policy_inputs(model, enc, completions, index, processor.tokenizer.pad_token_id,
                               model.config.image_token_id, pixels=pixels)


@pytest.mark.parametrize("freeze", ["vision", "none"])
def test_shared_prefix_logprobs_and_gradients_match_full_rows(setup, freeze):
    model, processor, prompts, images = setup
    policy_lib.apply_freeze(model, freeze)
    model.train()
    if freeze == "vision":
        model.model.visual.eval()
    enc = encode_prompts(processor, prompts, images)
    assert len({len(r) for r in enc.input_ids}) > 1  # prompts of different lengths (different image grids)
    with torch.no_grad():
        features = image_features(model, enc) if freeze == "vision" else None
    inputs = _inputs(model, processor, enc, g=4)
    weights = torch.randn(inputs.completion_ids.shape, generator=torch.Generator().manual_seed(1))
    out = {}
    for shared in (False, True):
        model.zero_grad(set_to_none=True)
        lp = completion_logprobs(model, inputs, features=features, shared_prefix=shared)
        (lp * weights).sum().backward()
        out[shared] = lp.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    (lp_full, g_full), (lp_shared, g_shared) = out[False], out[True]
    assert torch.allclose(lp_full, lp_shared, atol=1e-5), (lp_full - lp_shared).abs().max()
    assert g_full.keys() == g_shared.keys()
    assert any(n.startswith("model.visual") for n in g_full) == (freeze == "none")
    for name in g_full:
        scale = g_full[name].abs().max().clamp(min=1e-6)
        assert ((g_full[name] - g_shared[name]).abs().max() / scale) < 1e-4, name
    sub = inputs.select(torch.tensor([1, 2, 5, 9, 10]))  # a micro-batch cutting across groups
    with torch.no_grad():
        a = completion_logprobs(model, sub, features=features, shared_prefix=False)
        b = completion_logprobs(model, sub, features=features, shared_prefix=True)
    assert torch.allclose(a, b, atol=1e-5)
    policy_lib.apply_freeze(model, "none")


def test_shared_prefill_and_precomputed_features_sample_the_same(setup):
    model, processor, prompts, images = setup
    model.eval()
    sampling = SamplingConfig(n=4, max_new_tokens=10, temperature=1.0, seed=3)
    plain = HFGenerateEngine(model, processor, share_prompt_prefill=False, fast_sampler=False).generate(
        prompts, images, sampling)
    engine = HFGenerateEngine(model, processor, fast_sampler=False)  # HF's sampler: the same random stream
    shared = engine.generate(prompts, images, sampling)
    enc = encode_prompts(processor, prompts, images)
    with torch.no_grad():
        enc.image_features = image_features(model, enc)
    cached = engine.generate(prompts, images, sampling, encoded=enc)
    for other in (shared, cached):
        assert other.completion_ids == plain.completion_ids
        for a, b in zip(plain.sampling_logprobs, other.sampling_logprobs, strict=True):
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)


def test_encoded_prompts_select_and_concat(setup):
    model, processor, prompts, images = setup
    enc = encode_prompts(processor, prompts, images)
    with torch.no_grad():
        enc.image_features = image_features(model, enc)
    part = enc.select([2, 0])
    again = encode_prompts(processor, [prompts[2], prompts[0]], [images[2], images[0]])
    assert part.input_ids == again.input_ids
    assert torch.equal(part.pixel_values, again.pixel_values)
    assert torch.equal(part.image_grid_thw, again.image_grid_thw)
    assert part.patches_per_prompt == again.patches_per_prompt
    assert part.image_features[0] is enc.image_features[2]
    joined = EncodedPrompts.concat([enc.select([0]), enc.select([1, 2])])
    assert joined.input_ids == enc.input_ids and torch.equal(joined.pixel_values, enc.pixel_values)
    assert len(joined.image_features) == 3
    with pytest.raises(TypeError):  # engines without `accepts_encoded` refuse it by name
        from lit_triune.rollout.chunked import ChunkedEngine

        list(ChunkedEngine().generate_chunks(prompts, images, SamplingConfig(n=2), encoded=enc))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fast_sampler_draws_from_the_masked_softmax(setup, temperature):
    model, processor, prompts, images = setup
    model.eval()
    tok = processor.tokenizer
    favoured = torch.tensor([17, 300, 301, 900])
    vision = torch.tensor([tok.convert_tokens_to_ids("<|image_pad|>")])
    boost = torch.zeros(model.config.get_text_config().vocab_size)
    boost[favoured] = torch.tensor([9.0, 8.0, 7.5, 6.0])
    boost[vision] = 12.0  # would dominate if the mask were not applied

    def hook(_module, _inputs, logits):
        return logits + boost

    handle = model.lm_head.register_forward_hook(hook)
    try:
        n = 4000
        r = HFGenerateEngine(model, processor).generate(
            prompts[:1], images[:1], SamplingConfig(n=n, max_new_tokens=1, temperature=temperature, seed=0))
        enc = encode_prompts(processor, prompts[:1], images[:1])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor(enc.input_ids), pixel_values=enc.pixel_values,
                           image_grid_thw=enc.image_grid_thw,
                           mm_token_type_ids=(torch.tensor(enc.input_ids) == model.config.image_token_id).int()
                           ).logits[0, -1]
    finally:
        handle.remove()
    raw = torch.log_softmax(logits / temperature, -1)  # what is recorded: unmasked, as the trainer recomputes
    logits[vision] = float("-inf")
    probs = torch.softmax(logits / temperature, -1)
    first = torch.tensor([ids[0] for ids in r.completion_ids])
    assert not (first == vision).any()
    for t in favoured.tolist():
        p = float(probs[t])
        freq = float((first == t).float().mean())
        assert abs(freq - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-3, (t, freq, p)
    assert abs(r.sampling_logprobs[0][0] - float(raw[r.completion_ids[0][0]])) < 1e-3


def test_encoded_prompts_through_chunks_and_greedy(setup):
    """`encoded` is split per chunk with the prompts; greedy decoding (validation) takes it too."""
    model, processor, prompts, images = setup
    model.eval()
    enc = encode_prompts(processor, prompts, images)
    with torch.no_grad():
        enc.image_features = image_features(model, enc)
    engine = HFGenerateEngine(model, processor, chunk_size=2)
    for sampling in (SamplingConfig(n=3, max_new_tokens=8, seed=5), SamplingConfig(n=2, max_new_tokens=8, temperature=0.0)):
        plain = engine.generate(prompts, images, sampling)
        seen: list[torch.Tensor] = []
        cached = engine.generate(prompts, images, sampling, encoded=enc,
                                 on_chunk=lambda rows, part, seen=seen: seen.append(rows))
        assert [r.tolist() for r in seen] == [list(range(0, 2 * sampling.n)), list(range(2 * sampling.n, 3 * sampling.n))]
        assert cached.completion_ids == plain.completion_ids
        assert cached.prompt_index.tolist() == plain.prompt_index.tolist()


def _checkpointed(model, how: str):
    """Turn on activation checkpointing of every decoder layer and ViT block, the way `how` says:
    "hf" (HF's own, non-reentrant by default), "hf_reentrant", or "wrapper" (torch's CheckpointWrapper,
    what Lightning's FSDPStrategy(activation_checkpointing_policy=...) applies, non-reentrant)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        apply_activation_checkpointing,
        checkpoint_wrapper,
    )
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    if how == "wrapper":
        model = copy.deepcopy(model)
        apply_activation_checkpointing(
            model, checkpoint_wrapper_fn=functools.partial(checkpoint_wrapper, checkpoint_impl=CheckpointImpl.NO_REENTRANT),
            check_fn=lambda m: isinstance(m, (qwen.Qwen2_5_VLDecoderLayer, qwen.Qwen2_5_VLVisionBlock)))
        return model
    model = copy.deepcopy(model)
    model.gradient_checkpointing_enable({"use_reentrant": how == "hf_reentrant"})
    return model


def _counted(fn, calls: dict, key: str):
    def wrapped(*args, **kwargs):
        calls[key] += 1
        return fn(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("how", ["hf", "wrapper", "hf_reentrant"])
def test_shared_prefix_under_activation_checkpointing(setup, monkeypatch, how):
    """Checkpointed layers replay their forward in backward: the shared prefix's cache must not take the
    prompt's keys twice. Non-reentrant checkpointing (HF's default, Lightning FSDP's) keeps the shared
    path with the same log-probs and gradients as plain full rows; a reentrant one (no autograd inside
    the prompt pass) falls back to full rows, with a warning, rather than drop the prompt's gradient."""
    import lit_triune.rl.logprobs as logprobs_mod

    model, processor, prompts, images = setup
    policy_lib.apply_freeze(model, "none")
    model.train()
    enc = encode_prompts(processor, prompts, images)
    inputs = _inputs(model, processor, enc, g=3)
    weights = torch.randn(inputs.completion_ids.shape, generator=torch.Generator().manual_seed(2))
    model.zero_grad(set_to_none=True)
    reference = completion_logprobs(model, inputs, shared_prefix=False)
    (reference * weights).sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    ckpt = _checkpointed(model, how)
    ckpt.train()
    calls = {"shared": 0, "full": 0}
    for name, key in (("_completion_hidden_shared_prefix", "shared"), ("_forward_hidden", "full")):
        original = getattr(logprobs_mod, name)
        monkeypatch.setattr(logprobs_mod, name, _counted(original, calls, key))
    replays = {"n": 0}
    block = ckpt.model.language_model.layers[0]
    block = getattr(block, "_checkpoint_wrapped_module", block)  # the wrapper's inner layer is what replays
    block.register_forward_pre_hook(lambda *a: replays.__setitem__("n", replays["n"] + 1))
    if how == "hf_reentrant":
        with pytest.warns(UserWarning, match="reentrant"):
            lp = completion_logprobs(ckpt, inputs, shared_prefix=True)
    else:
        lp = completion_logprobs(ckpt, inputs, shared_prefix=True)
    before = replays["n"]
    (lp * weights).sum().backward()
    assert replays["n"] > before  # the layers really were recomputed in backward
    assert calls == ({"shared": 1, "full": 1} if how == "hf_reentrant" else {"shared": 1, "full": 0})
    assert torch.allclose(lp.detach(), reference.detach(), atol=1e-5), (lp - reference).abs().max()
    grads = {n.replace("_checkpoint_wrapped_module.", ""): p.grad for n, p in ckpt.named_parameters()}
    assert grads.keys() == ref_grads.keys()
    for name, ref in ref_grads.items():
        assert grads[name] is not None, name
        scale = ref.abs().max().clamp(min=1e-6)
        assert ((grads[name] - ref).abs().max() / scale) < 1e-4, name
