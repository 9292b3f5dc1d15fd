"""Rollouts on the trained module itself (the CPU default): transformers' `generate`, or on the training path
(shared prefill + our sampler) our own decoding loop over the same model (`rollout/decode.py`, same tokens).

It shares the policy's parameters, so `sync_weights` has nothing to copy. Three details decide whether
its samples are usable for GRPO:

* Sampling is fully explicit. A fresh `GenerationConfig` replaces the checkpoint's during the call, so
  nothing leaks in silently (HF's global default `top_k=50`; a real Qwen2.5-VL-Instruct ships
  `top_k=1, top_p=0.001, repetition_penalty=1.05`). `SamplingConfig.top_k == 0` really means off.
* One logits processor, first in the chain, records log_softmax(raw_logits / temperature) of each
  sampled token (what `completion_logprobs` recomputes) and then sets the vision/pad tokens to -inf.
  Holding one step's [N, V] log-probs costs O(N·V) memory where `output_logits=True` costs O(N·T·V).
* Rows are prompt-major (row i*G + g), cut after the first stop token (kept: the loss trains the stop).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from lit_triune.models.kv_cache import cache_rows
from lit_triune.models.policy_inputs import EncodedPrompts, encode_prompts
from lit_triune.models.sharding import fsdp_root, in_root_forward, is_sharded
from lit_triune.models.vision import encoder_outputs
from lit_triune.rollout.base import Rollout, SamplingConfig
from lit_triune.rollout.chunked import ChunkedEngine
from lit_triune.rollout.decode import decode
from lit_triune.rollout.vision_tokens import (
    assemble_rollout,
    pad_token_id,
    stop_token_ids,
    vision_token_ids,
)


class _MaskAndRecord(LogitsProcessor):
    """Records the sampled token's log-prob under log_softmax(raw / T), then masks vision tokens.

    Called once per decoding step with the raw float32 logits (it runs before HF's temperature/top-k/
    top-p warpers, and the clean config adds no other processor). At step t, `input_ids[:, -1]` is the
    token sampled at step t-1, so the previous step's distribution is gathered then.
    """

    def __init__(self, vision_ids: list[int], temperature: float, record: bool, sample: bool = False) -> None:
        self.vision_ids = vision_ids
        self.temperature = temperature if temperature > 0 else 1.0  # greedy: plain log_softmax
        self.record = record
        self.sample = sample
        self._last: Tensor | None = None  # [N, V] log-probs of the latest step
        self._steps: list[Tensor] = []  # T-1 tensors [N]

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:  # [N, L], [N, V]
        logps = self._record(input_ids, scores)
        if self.sample:  # scores 0 at the drawn token and -inf elsewhere, so HF's greedy step picks it
            token = self._draw(logps)  # [N, 1]
            return torch.full_like(scores, float("-inf")).scatter_(1, token, 0.0)
        if self.vision_ids:
            scores[:, self.vision_ids] = float("-inf")
        return scores

    def next_tokens(self, input_ids: Tensor, logits: Tensor) -> Tensor:  # [N, L], [N, V] -> [N]
        """One step of our own decoding loop (rollout/decode.py) with the drawing processor: records the
        previous token's log-prob and returns the drawn tokens, the ones `__call__` makes HF pick."""
        if not self.sample:
            raise RuntimeError("next_tokens needs the drawing processor (sample=True)")
        return self._draw(self._record(input_ids, logits)).squeeze(1)

    def _record(self, input_ids: Tensor, scores: Tensor) -> Tensor | None:  # -> [N, V] log-probs or None
        logps = None
        if self.record or self.sample:
            logps = torch.log_softmax(scores.float() / self.temperature, dim=-1)  # [N, V]
        if self.record:
            if self._last is not None:
                self._steps.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))  # [N]
            self._last = logps
        return logps

    def _draw(self, logps: Tensor) -> Tensor:  # [N, V] -> [N, 1]
        """One token per row from softmax(raw / T) without the vision tokens, by inverse CDF: N uniforms
        and a search per step. HF's sampler (multinomial) draws an exponential for every vocabulary
        entry of every row, the most expensive op of a small model's decoding step on CPU."""
        probs = logps.exp()  # [N, V]
        if self.vision_ids:
            probs[:, self.vision_ids] = 0.0
        cdf = probs.cumsum(-1)  # [N, V]
        u = torch.rand((probs.shape[0], 1), device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]  # [N, 1]
        return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[1] - 1)  # [N, 1]

    def finish(self, last_tokens: Tensor) -> Tensor | None:  # [N] -> [N, T]
        if not self.record or self._last is None:
            return None
        self._steps.append(self._last.gather(1, last_tokens.unsqueeze(1)).squeeze(1))
        return torch.stack(self._steps, dim=1)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval for generation (no dropout), then every submodule's own previous mode (frozen parts stay eval).

    Also puts back Qwen-VL's cached `rope_deltas`, which `generate` overwrites with an inference-mode
    tensor sized for its own batch; the trainer's forward passes must not inherit it.
    """
    modes = [(m, m.training) for m in model.modules()]
    holders = [m for m in model.modules() if hasattr(m, "rope_deltas")]
    deltas = [m.rope_deltas for m in holders]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for m, delta in zip(holders, deltas, strict=True):
            m.rope_deltas = delta


@contextmanager
def _only_generation_config(model: nn.Module, config: GenerationConfig) -> Iterator[None]:
    """HF fills every field we leave unset from `model.generation_config`; swap it out for the call."""
    saved = getattr(model, "generation_config", None)
    model.generation_config = config
    try:
        yield
    finally:
        model.generation_config = saved


def _shared_prefill(model: nn.Module, inputs: dict[str, Any], n: int, room: int = 0) -> dict[str, Any]:
    """Prefills the b prompts (all but their last token) once and returns `generate` inputs for the b*n
    rows that continue from that cache: KV tensors and Qwen-VL's M-RoPE `rope_deltas` repeated n times
    per prompt (prompt-major, as `num_return_sequences` orders rows). HF would prefill all b*n rows;
    the sampled tokens are the same (the prefill draws no random numbers). Runs in the caller's
    inference mode; `_eval_mode` restores `rope_deltas` afterwards. `room`: positions to preallocate in
    the rows' cache for our own decoding loop (`kv_cache.PreallocatedLayer`); 0 for `generate`."""
    from transformers import DynamicCache

    input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]  # [b, L] left-padded
    prefix = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    if "mm_token_type_ids" in inputs:
        prefix["mm_token_type_ids"] = inputs["mm_token_type_ids"][:, :-1]
    cache = DynamicCache(config=model.config.get_text_config())
    inner = model.model
    inner.rope_deltas = None
    inner(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1], past_key_values=cache, use_cache=True,
          **prefix)
    rows = cache_rows(cache, torch.arange(input_ids.shape[0], device=input_ids.device).repeat_interleave(n),
                      model.config.get_text_config(), room=room)  # prompt-major: each prompt's cache n times
    inner.rope_deltas = inner.rope_deltas.repeat_interleave(n, dim=0)  # [b*n, 1]
    return {"input_ids": input_ids.repeat_interleave(n, dim=0), "attention_mask": attention_mask.repeat_interleave(n, dim=0),
            "past_key_values": rows}


class HFGenerateEngine(ChunkedEngine):
    """`RolloutEngine` backed by `model.generate` on the policy module itself.

    Args:
        model: The policy (`nn.Module`), or a zero-argument callable returning it (so the engine follows
            a module that rebuilds its policy), or None to be bound later with `bind`.
        processor: The HF processor of the policy (tokenizer + image processor); may be bound later.
        chunk_size: Prompts per `model.generate` call (None: the whole batch). Smaller chunks let a caller
            score chunk k while chunk k+1 generates (see `generate_chunks`).
        mask_vision_tokens: Keep vision/pad tokens out of sampling (only tests turn this off).
        keep_logprobs: Record the sampled tokens' log-probs into `Rollout.sampling_logprobs`.
        share_prompt_prefill: Sampling G > 1 rows of image prompts: prefill each prompt once and copy its
            KV cache to its G rows (`_shared_prefill`), instead of HF's prefill of every row. Same tokens
            and log-probs (a test checks); False gives HF's own path.
        fast_sampler: Draw tokens by inverse CDF in the logits processor (N uniforms per step) instead of
            HF's multinomial (an exponential per vocabulary entry); used when top_k is off and top_p = 1.
            Same distribution, different random stream: False gives HF's sampler.
        own_decode: With the shared prefill and the fast sampler (the training path), decode in our own loop
            (`rollout/decode.py`) instead of `model.generate`'s: the same tokens and log-probs without HF's
            per-token bookkeeping. Not under FSDP, where `generate` keeps the ranks' decoding steps in step.
            False gives HF's loop.
        split_by_length_key: Given `length_keys` (the trainer passes each prompt's data source), one
            `model.generate` call per key: HF computes every row of a call until the longest one stops, so
            the CPU default's 12-token answers would wait for its 90-token box lists
            (benchmarks/generation_blocks.py). False: one call per chunk, whatever the keys. Not under
            FSDP, where the ranks must make the same number of calls.

    `generate(..., encoded=enc)` takes the prompts already through `encode_prompts`; with
    `enc.image_features` set (a frozen vision tower's output, computed once by the trainer) the vision
    tower is skipped and the features go to `model.generate` as `mm_encoder_outputs`.
    """

    accepts_encoded = True

    def __init__(
        self,
        model: nn.Module | Callable[[], nn.Module] | None = None,
        processor: Any = None,
        *,
        chunk_size: int | None = None,
        mask_vision_tokens: bool = True,
        keep_logprobs: bool = True,
        share_prompt_prefill: bool = True,
        fast_sampler: bool = True,
        own_decode: bool = True,
        split_by_length_key: bool = True,
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be None or >= 1 prompts, got {chunk_size}")
        self._model = model
        self.processor = processor
        self.chunk_size = chunk_size
        self.mask_vision_tokens = mask_vision_tokens
        self.keep_logprobs = keep_logprobs
        self.share_prompt_prefill = share_prompt_prefill
        self.fast_sampler = fast_sampler
        self.own_decode = own_decode
        self.split_by_length_key = split_by_length_key

    def bind(self, model: nn.Module | Callable[[], nn.Module], processor: Any = None) -> None:
        """Called by RolloutCallback at fit start: the module to generate with and its processor."""
        self._model = model
        if processor is not None:
            self.processor = processor

    @property
    def model(self) -> nn.Module:
        model = (
            self._model() if callable(self._model) and not isinstance(self._model, nn.Module) else self._model
        )
        if model is None:
            raise RuntimeError(
                "HFGenerateEngine has no model: pass one to the constructor or call bind(model, processor)"
            )
        return model

    def _splits_by_length_key(self) -> bool:
        # Under FSDP every rank must make the same number of `generate` calls (each gathers the sharded
        # layers, and HF keeps the ranks' decode steps in step within a call, not across calls); the
        # sources in each rank's batch differ, so FSDP keeps one call per chunk.
        return self.split_by_length_key and fsdp_root(self.model) is None

    def sync_weights(self, model: nn.Module) -> None:
        """No copy: generation runs on the module itself. Adopts `model` if the engine follows none yet."""
        if self._model is None:
            self._model = model

    def close(self) -> None:
        """Nothing to release (RolloutCallback calls this at teardown)."""

    def _generate_block(
        self,
        prompts: list[str],
        images: list[Any],
        sampling: SamplingConfig,
        first_prompt: int,
        seed: int | None,
        encoded: EncodedPrompts | None = None,
    ) -> Rollout:
        if self.processor is None:
            raise RuntimeError("HFGenerateEngine has no processor: pass one to the constructor or to bind()")
        # FSDP: generation runs as one forward of the policy's root (models/sharding.py); else a plain call
        return in_root_forward(self.model, self._generate_on, prompts, images, sampling, first_prompt, seed, encoded)

    def _generate_on(
        self,
        model: nn.Module,
        prompts: list[str],
        images: list[Any],
        sampling: SamplingConfig,
        first_prompt: int,
        seed: int | None,
        encoded: EncodedPrompts | None = None,
    ) -> Rollout:
        tokenizer = self.processor.tokenizer
        device = next(model.parameters()).device
        stops, pad = stop_token_ids(tokenizer), pad_token_id(tokenizer)
        vision = vision_token_ids(tokenizer) if self.mask_vision_tokens else []
        t0 = time.perf_counter()
        enc = encoded if encoded is not None else encode_prompts(self.processor, prompts, images)
        b, length = len(enc), max(len(r) for r in enc.input_ids)
        input_ids = torch.full((b, length), pad, dtype=torch.long)  # [b, L] left-padded
        attention_mask = torch.zeros((b, length), dtype=torch.long)  # [b, L]
        for i, row in enumerate(enc.input_ids):
            input_ids[i, length - len(row) :] = torch.tensor(row)
            attention_mask[i, length - len(row) :] = 1
        inputs: dict[str, Any] = {
            "input_ids": input_ids.to(device),
            "attention_mask": attention_mask.to(device),
        }
        if enc.image_features is not None:  # the vision tower already ran on these images: skip it
            features = tuple(f.to(device) for f in enc.image_features)
            inputs["mm_encoder_outputs"] = encoder_outputs(features)
            inputs["image_grid_thw"] = enc.image_grid_thw.to(device)  # [b, 3]
        elif enc.pixel_values is not None:
            inputs["pixel_values"] = enc.pixel_values.to(device=device, dtype=model.dtype)  # [P, D]
            inputs["image_grid_thw"] = enc.image_grid_thw.to(device)  # [b, 3]
        if enc.image_grid_thw is not None:
            # Without it transformers silently uses 1-D positions for the whole prompt (not M-RoPE).
            image_token = getattr(model.config, "image_token_id", None)
            inputs["mm_token_type_ids"] = (input_ids == image_token).int().to(device)  # [b, L]
        greedy = sampling.temperature == 0
        # G samples of a prompt share its prefill: run it once per prompt, not once per row.
        share = (self.share_prompt_prefill and not greedy and sampling.n > 1 and length > 1
                 and enc.image_grid_thw is not None and hasattr(getattr(model, "model", None), "rope_deltas"))
        # Our own inverse-CDF draw (see _MaskAndRecord._draw) when no top-k/top-p filtering is asked for;
        # HF then runs its greedy loop over the one-hot scores the processor returns. It needs the rows
        # expanded before `generate` (HF's greedy loop takes no num_return_sequences): done by the shared
        # prefill, or for text-only prompts here.
        fast = (self.fast_sampler and not greedy and int(sampling.top_k) in (0, -1) and float(sampling.top_p) >= 1.0
                and (share or sampling.n == 1 or enc.image_grid_thw is None))
        config = GenerationConfig(
            do_sample=not greedy and not fast,
            temperature=None if greedy or fast else float(sampling.temperature),
            top_k=None if greedy or fast else max(int(sampling.top_k), 0),  # 0 = off (HF skips TopK when 0)
            top_p=None if greedy or fast else float(sampling.top_p),
            num_beams=1,
            max_new_tokens=int(sampling.max_new_tokens),
            # greedy: one row, copied G times; fast: rows expanded before generate
            num_return_sequences=1 if greedy or fast else int(sampling.n),
            eos_token_id=stops,
            pad_token_id=pad,
            repetition_penalty=1.0,
            return_dict_in_generate=True,
            use_cache=True,
        )
        recorder = _MaskAndRecord(vision, sampling.temperature, self.keep_logprobs, sample=fast)
        own = share and fast and self.own_decode and not is_sharded(self.model)  # rollout/decode.py's loop
        t1 = time.perf_counter()
        rng_devices = [device] if device.type == "cuda" else []
        # no_grad under FSDP: parameters it gathers inside inference_mode would be inference tensors
        no_grad = torch.no_grad() if is_sharded(self.model) else torch.inference_mode()
        with torch.random.fork_rng(devices=rng_devices), no_grad, _eval_mode(model):
            if seed is not None:
                torch.manual_seed(seed)
            if share:
                inputs = _shared_prefill(model, inputs, int(sampling.n), room=int(sampling.max_new_tokens) if own else 0)
                config.num_return_sequences = 1
            elif fast and sampling.n > 1:  # text-only rows: HF's greedy loop refuses num_return_sequences
                inputs = {k: v.repeat_interleave(int(sampling.n), dim=0) for k, v in inputs.items()}
                config.num_return_sequences = 1
            if own:
                sequences = decode(model, inputs["input_ids"], inputs["attention_mask"], inputs["past_key_values"],
                                   recorder.next_tokens, max_new_tokens=int(sampling.max_new_tokens),
                                   stop_ids=stops, pad_id=pad)  # [b*G, L + T]
            else:
                with _only_generation_config(model, config):
                    sequences = model.generate(
                        **inputs, generation_config=config, logits_processor=LogitsProcessorList([recorder])
                    ).sequences  # [b*G, L + T]
        new_tokens = sequences[:, length:]  # [b*G, T]
        logprobs = recorder.finish(sequences[:, -1])  # [b*G, T] or None
        if greedy and sampling.n > 1:  # identical by construction; HF refuses num_return_sequences here
            new_tokens = new_tokens.repeat_interleave(sampling.n, dim=0)  # [b*G, T]
            logprobs = None if logprobs is None else logprobs.repeat_interleave(sampling.n, dim=0)
        t2 = time.perf_counter()
        prompt_index = torch.arange(first_prompt, first_prompt + b).repeat_interleave(sampling.n)  # [b*G]
        rollout = assemble_rollout(
            tokenizer,
            new_tokens.cpu().tolist(),
            None if logprobs is None else logprobs.cpu().tolist(),
            prompt_index,
            stops=stops,
            vision_ids=vision_token_ids(tokenizer),
        )
        rollout.timings = {
            "engine/encode": t1 - t0,
            "engine/generate": t2 - t1,
            "engine/postprocess": time.perf_counter() - t2,
        }
        return rollout
