"""Rollout + scoring for one batch of prompts: the engine samples, the verifier pool scores."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lit_triune.models.policy_inputs import EncodedPrompts, encode_prompts
from lit_triune.models.vision import image_features
from lit_triune.rl.records import build_records
from lit_triune.rl.scoring import RewardScorer
from lit_triune.rollout.base import Rollout, SamplingConfig
from lit_triune.rollout.chunked import ChunkedEngine


@dataclass
class RolloutSettings:
    group_size: int = 8
    max_new_tokens: int = 2048
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    val_max_new_tokens: int = 2048
    # Stage reports: 0 = greedy only; k > 0 also samples k completions per prompt at `val_temperature`
    # (None = `temperature`) and reports their mean (avg@k, the policy's expected reward that RL raises).
    val_samples: int = 0
    val_temperature: float | None = None
    # Box rewards in validation are scored at this fixed IoU threshold, so reports taken at different training
    # thresholds (the dynamic schedule) compare on one yardstick; None = the current training threshold.
    val_iou_threshold: float | None = None
    seed: int = 0


@dataclass
class ScoredRollout:
    """B prompts × G scored completions, prompt-major. Prompt-level lists have length B, row-level N."""

    group_size: int
    prompts: list[str]
    images: list[Any]
    image_sizes: list[tuple[int, int]]
    reward_models: list[dict[str, Any]]
    data_sources: list[str]
    completion_ids: list[list[int]]  # N
    texts: list[str]  # N
    truncated: Tensor  # [N] bool
    results: list[dict[str, Any]]  # N
    timings: dict[str, float] = field(default_factory=dict)
    # The B prompts through the processor (and, with a frozen ViT, their image features), as the engine
    # used them: the update reuses them instead of running the processor and the vision tower again.
    encoded: EncodedPrompts | None = None
    spurious_vision_tokens: int = 0  # vision tokens the engine stripped from the completions before scoring
    # The behaviour policy's log-probs of the sampled tokens, as the engine returned them (N lists), and the
    # global step whose weights sampled them: asynchronous rollouts take the importance ratio against these.
    sampling_logprobs: list[list[float]] | None = None
    behaviour_step: int | None = None

    @property
    def num_groups(self) -> int:
        return len(self.prompts)

    @property
    def prompt_index(self) -> Tensor:  # [N]
        return torch.arange(self.num_groups).repeat_interleave(self.group_size)

    def row_tensor(self, key: str) -> Tensor:  # [N] float
        return torch.tensor([float(r.get(key) or 0.0) for r in self.results], dtype=torch.float32)

    def select_groups(self, keep: list[int]) -> ScoredRollout:
        g = self.group_size
        rows = [i * g + j for i in keep for j in range(g)]
        return ScoredRollout(
            group_size=g,
            prompts=[self.prompts[i] for i in keep],
            images=[self.images[i] for i in keep],
            image_sizes=[self.image_sizes[i] for i in keep],
            reward_models=[self.reward_models[i] for i in keep],
            data_sources=[self.data_sources[i] for i in keep],
            completion_ids=[self.completion_ids[r] for r in rows],
            texts=[self.texts[r] for r in rows],
            truncated=self.truncated[rows] if rows else torch.zeros(0, dtype=torch.bool),
            results=[self.results[r] for r in rows],
            timings=dict(self.timings),
            encoded=None if self.encoded is None else self.encoded.select(keep),
            sampling_logprobs=None if self.sampling_logprobs is None else [self.sampling_logprobs[r] for r in rows],
            behaviour_step=self.behaviour_step,
        )

    @staticmethod
    def concat(parts: list[ScoredRollout]) -> ScoredRollout:
        first = parts[0]
        return ScoredRollout(
            group_size=first.group_size,
            prompts=[x for p in parts for x in p.prompts],
            images=[x for p in parts for x in p.images],
            image_sizes=[x for p in parts for x in p.image_sizes],
            reward_models=[x for p in parts for x in p.reward_models],
            data_sources=[x for p in parts for x in p.data_sources],
            completion_ids=[x for p in parts for x in p.completion_ids],
            texts=[x for p in parts for x in p.texts],
            truncated=torch.cat([p.truncated for p in parts]),
            results=[x for p in parts for x in p.results],
            encoded=EncodedPrompts.concat([p.encoded for p in parts])
            if all(p.encoded is not None for p in parts) else None,
            sampling_logprobs=[x for p in parts for x in p.sampling_logprobs]
            if all(p.sampling_logprobs is not None for p in parts) else None,
        )

    def records(self, lengths: Tensor | None = None) -> dict[str, Any]:
        g = self.group_size
        if lengths is None:
            lengths = torch.tensor([len(c) for c in self.completion_ids], dtype=torch.long)
        return build_records(
            data_sources=[s for s in self.data_sources for _ in range(g)],
            prompts=[p for p in self.prompts for _ in range(g)],
            responses=self.texts,
            results=self.results,
            response_lengths=lengths,
            truncated=self.truncated,
            images=[im for im in self.images for _ in range(g)],
        )


@dataclass
class RolloutContext:
    """What a rollout takes from the trainer at the moment it runs (the module builds it: `rollout_context`)."""

    engine: Any  # generate(prompts, images, sampling) -> Rollout; a ChunkedEngine may also take `encoded`
    policy: Any  # the trained model (image features for a frozen ViT)
    processor: Any
    device: torch.device
    step: int  # global step: seeds the sampling, so a resumed run samples what the uninterrupted one did
    rank: int
    iou_threshold: float  # the current training threshold for box rewards
    vision_features: bool = False  # compute frozen-ViT features once per batch, for the engine and the update


def frozen_image_features(policy: Any, enc: EncodedPrompts, device: torch.device) -> tuple[Tensor, ...] | None:
    """The vision tower's output for each prompt's image, without gradients (the ViT is frozen)."""
    if enc.pixel_values is None:
        return None
    with torch.no_grad():
        on_device = EncodedPrompts(enc.input_ids, enc.pixel_values.to(device), enc.image_grid_thw.to(device),
                                   enc.patches_per_prompt)
        return image_features(policy, on_device)


def encode_batch(processor: Any, batch: Any, vision: Any, device: torch.device) -> EncodedPrompts:
    """A batch's prompts through the processor and, with `vision` (a policy whose ViT is frozen; None: none),
    its image features: the inputs one encoding serves to the engine and the update alike."""
    enc = encode_prompts(processor, list(batch.prompts), list(batch.images))
    if vision is not None:
        enc.image_features = frozen_image_features(vision, enc, device)
    return enc


class RolloutRunner:
    """Samples and scores batches: given its settings and a way to start a scorer (the verifier pool); the
    engine, policy and threshold of the moment come with each call (`RolloutContext`)."""

    share_prompt_encoding = True  # encode prompts (+ frozen-ViT features) once for engine and update

    def __init__(self, settings: RolloutSettings, scorer_factory: Callable[[], RewardScorer]) -> None:
        self.settings = settings
        self.scorer_factory = scorer_factory
        self.scorer: RewardScorer | None = None

    def start(self) -> None:
        if self.scorer is None:
            self.scorer = self.scorer_factory()

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()
            self.scorer = None

    def _seed(self, ctx: RolloutContext, salt: int = 0) -> int:
        """Derived from the step, so a resumed run samples exactly what the uninterrupted one did."""
        return (self.settings.seed * 1_000_003 + ctx.step * 7919 + ctx.rank * 104_729 + salt) % (2**31 - 1)

    def _sampling(self, ctx: RolloutContext, *, greedy: bool, salt: int = 0) -> SamplingConfig:
        s = self.settings
        seed = self._seed(ctx, salt)
        if greedy:
            return SamplingConfig(n=1, max_new_tokens=s.val_max_new_tokens, temperature=0.0, seed=seed)
        return SamplingConfig(n=s.group_size, max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                              top_p=s.top_p, top_k=s.top_k, seed=seed)

    def _val_sampling(self, ctx: RolloutContext) -> SamplingConfig:
        """k samples per validation prompt (`val_samples`) at the validation temperature, seeded like training
        rollouts but apart from them (salt)."""
        s = self.settings
        seed = self._seed(ctx, salt=65_537)
        temperature = s.temperature if s.val_temperature is None else s.val_temperature
        return SamplingConfig(n=s.val_samples, max_new_tokens=s.val_max_new_tokens, temperature=temperature,
                              top_p=s.top_p, top_k=s.top_k, seed=seed)

    def _encode(self, batch: Any, ctx: RolloutContext) -> EncodedPrompts | None:
        """Prompts through the processor once per rollout batch, for the engine and the update alike; with a
        frozen ViT (`ctx.vision_features`) its features too, so it runs once per batch in all."""
        if not (self.share_prompt_encoding and getattr(ctx.engine, "accepts_encoded", False)):
            return None
        return encode_batch(ctx.processor, batch, ctx.policy if ctx.vision_features else None, ctx.device)

    def _run(self, batch: Any, ctx: RolloutContext, sampling: SamplingConfig,
             iou_threshold: float | None = None) -> ScoredRollout:
        self.start()
        t0 = time.perf_counter()
        engine = ctx.engine
        encoded = self._encode(batch, ctx)
        reward_models = list(batch.reward_models)
        sizes = [tuple(s) for s in batch.image_sizes]
        iou = ctx.iou_threshold if iou_threshold is None else iou_threshold
        pending: list[tuple[list[int], Any]] = []

        def score_chunk(rows: Tensor, part: Rollout) -> None:
            # Each finished chunk goes to the verifier pool's processes right away, so with a chunked
            # engine its scoring overlaps the generation of the next chunk.
            idx = part.prompt_index.tolist()
            pending.append((rows.tolist(), self.scorer.submit(part.texts, [reward_models[i] for i in idx],
                                                              [sizes[i] for i in idx], iou_threshold=iou)))

        kwargs: dict[str, Any] = {} if encoded is None else {"encoded": encoded}
        if isinstance(engine, ChunkedEngine):
            # one generate call per data source when the engine gains by it (answer lengths differ by source)
            rollout: Rollout = engine.generate(list(batch.prompts), list(batch.images), sampling,
                                               on_chunk=score_chunk, length_keys=list(batch.data_sources), **kwargs)
        else:  # any engine with the plain protocol: score after the whole batch
            rollout = engine.generate(list(batch.prompts), list(batch.images), sampling)
            score_chunk(torch.arange(len(rollout.texts)), rollout)
        t1 = time.perf_counter()
        g = sampling.n
        results: list[Any] = [None] * len(rollout.texts)
        for rows, wait in pending:  # chunks may hold any rows (length groups): put each result in its row
            for row, result in zip(rows, wait(), strict=True):
                results[row] = result
        t2 = time.perf_counter()
        return ScoredRollout(
            group_size=g, prompts=list(batch.prompts), images=list(batch.images),
            image_sizes=sizes, reward_models=reward_models,
            data_sources=list(batch.data_sources), completion_ids=rollout.completion_ids, texts=rollout.texts,
            truncated=rollout.truncated.bool().cpu(), results=results,
            # "reward": scoring time not hidden behind generation (waiting for the pool after the last chunk)
            timings={"generate": t1 - t0, "reward": t2 - t1, **rollout.timings},
            encoded=encoded, spurious_vision_tokens=int(rollout.spurious_vision_tokens.sum()),
            sampling_logprobs=rollout.sampling_logprobs,
        )

    def score(self, batch: Any, rollout: Rollout, iou_threshold: float) -> ScoredRollout:
        """Scores a rollout generated elsewhere (asynchronous rollouts: rl/async_rollouts.py) in one pool call."""
        self.start()
        t0 = time.perf_counter()
        reward_models, sizes = list(batch.reward_models), [tuple(s) for s in batch.image_sizes]
        idx = rollout.prompt_index.tolist()
        results = self.scorer.submit(rollout.texts, [reward_models[i] for i in idx], [sizes[i] for i in idx],
                                     iou_threshold=iou_threshold)()
        return ScoredRollout(
            group_size=len(rollout.texts) // max(len(batch.prompts), 1), prompts=list(batch.prompts),
            images=list(batch.images), image_sizes=sizes, reward_models=reward_models,
            data_sources=list(batch.data_sources), completion_ids=rollout.completion_ids, texts=rollout.texts,
            truncated=rollout.truncated.bool().cpu(), results=results,
            timings={"reward": time.perf_counter() - t0, **rollout.timings},
            spurious_vision_tokens=int(rollout.spurious_vision_tokens.sum()),
            sampling_logprobs=rollout.sampling_logprobs,
        )

    def rollout(self, batch: Any, ctx: RolloutContext, salt: int = 0) -> ScoredRollout:
        """G sampled completions per prompt, scored at the current training threshold."""
        scored = self._run(batch, ctx, self._sampling(ctx, greedy=False, salt=salt))
        sleep = getattr(ctx.engine, "sleep", None)
        if callable(sleep):  # vLLM with sleep mode frees its GPU memory for the update; generate() wakes it
            sleep()
        return scored

    def evaluate(self, batch: Any, ctx: RolloutContext) -> dict[str, Any]:
        """One greedy completion per prompt, scored: a row per prompt."""
        return self._run(batch, ctx, self._sampling(ctx, greedy=True), self.settings.val_iou_threshold).records()

    def evaluate_sampled(self, batch: Any, ctx: RolloutContext) -> dict[str, Any]:
        """`val_samples` sampled completions per prompt, scored: k rows per prompt."""
        if self.settings.val_samples < 1:
            raise ValueError("evaluate_sampled needs val_samples >= 1")
        return self._run(batch, ctx, self._val_sampling(ctx), self.settings.val_iou_threshold).records()
