"""Asynchronous rollouts: the next batch is generated (and scored) while the current update runs.

Off by default (`TriuneModule(async_rollouts=True)` turns it on); the paper's on-policy loop stays the
default. It needs an engine in its own process with `submit` (lit_triune.rollout.RemoteEngine). Each
training step:

1. submits the step's batch to the engine, which samples it with the weights it holds — those after
   `global_step` updates, because the RolloutCallback pushes after every optimizer step and the server serves
   a connection's requests in order (a push made later waits for this rollout);
2. when more than `max_staleness` rollouts are in flight, takes the oldest: the update trains on a rollout
   sampled `staleness` optimizer steps ago (<= max_staleness), with the importance ratio taken against the
   behaviour policy's own sampling log-probs returned by the engine (rl/update.py `behaviour_logprobs`);
   until then (the first step of a run) no update happens, as on a dynamic-sampling refill step.

Each batch is sampled with the seed the on-policy loop gives it (the global step that trains it), so the two
loops draw the same random numbers and differ by the lag alone.

A helper thread waits for each in-flight rollout and scores it as soon as it arrives (the verifier pool's
processes), so scoring overlaps the update too; it also encodes the rollout's prompts for its update (and,
with a frozen unsharded ViT, computes the image features), which the trainer did on its own path before. A
checkpoint stores the in-flight rollouts, completed (the push before the checkpoint already waited for them), so
a resumed run trains on exactly what the uninterrupted one would have. Every rank keeps its own queue; rank 0's
checkpoint holds all of them.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from lit_triune.models.sharding import is_sharded
from lit_triune.rl.rollout_step import RolloutContext, RolloutRunner, ScoredRollout, encode_batch
from lit_triune.rollout.base import Rollout, SamplingConfig


@dataclass
class PromptBatch:
    """The fields of a data batch a rollout needs (a restored in-flight rollout has no DataLoader batch)."""

    prompts: list[str]
    images: list[Any]
    reward_models: list[dict[str, Any]]
    data_sources: list[str]
    image_sizes: list[tuple[int, int]]

    @staticmethod
    def of(batch: Any) -> PromptBatch:
        return PromptBatch(list(batch.prompts), list(batch.images), list(batch.reward_models),
                           list(batch.data_sources), [tuple(s) for s in batch.image_sizes])


@dataclass
class InFlight:
    batch: PromptBatch
    step: int  # global step at submission: the behaviour policy is the weights after `step` updates
    iou_threshold: float  # the training threshold at submission (the scores do not depend on when they run)
    sampling: SamplingConfig
    handle: Any = None  # the engine's in-flight request (None once restored from a checkpoint)
    rollout: Rollout | None = None  # the completed rollout (restored, or fetched for a checkpoint)
    scoring: Future | None = None  # the helper thread's job: -> ScoredRollout
    submitted: float = field(default_factory=time.perf_counter)


class AsyncRollouts:
    """The queue of in-flight rollouts of one trainer rank."""

    def __init__(self, runner: RolloutRunner, max_staleness: int = 1) -> None:
        if max_staleness < 1:
            raise ValueError(f"max_staleness must be >= 1 (0 is the on-policy loop: async_rollouts=False), "
                             f"got {max_staleness}")
        self.runner = runner
        self.max_staleness = max_staleness
        self.queue: deque[InFlight] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._last_seed: tuple[int, int] | None = None  # (step, salt) the last submission was seeded with

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="async-rollout-scoring")
        return self._pool

    def submit(self, batch: Any, ctx: RolloutContext) -> None:
        engine = ctx.engine
        if not callable(getattr(engine, "submit", None)):
            raise TypeError(f"async_rollouts needs an engine that generates in its own process and has submit() "
                            f"(lit_triune.rollout.RemoteEngine through the RolloutCallback); got "
                            f"{type(engine).__name__}")
        # Seeded as the on-policy loop seeds this batch: by the global step that will train on it (one more per
        # rollout already in flight, an update per step). Both loops then draw the same random numbers for the
        # same batch and differ only by the policy's lag: common random numbers, so a paired comparison of the
        # two measures what the lag costs rather than two independent draws (docs/reproduce/async).
        # With dynamic sampling a refill step takes no optimizer step, so the next submission would get the same
        # step: salted apart by how many submissions in a row had it (0 whenever every step updates, so the
        # seeds above stand), as the on-policy loop salts its refills.
        seed_step = ctx.step + len(self.queue)
        salt = self._last_seed[1] + 1 if self._last_seed is not None and self._last_seed[0] == seed_step else 0
        self._last_seed = (seed_step, salt)
        sampling = self.runner._sampling(replace(ctx, step=seed_step), greedy=False, salt=salt)
        item = InFlight(PromptBatch.of(batch), ctx.step, ctx.iou_threshold, sampling)
        item.handle = engine.submit(item.batch.prompts, item.batch.images, sampling)
        # the ViT's features here too when that runs no collective (a sharded policy gathers its weights)
        vision = ctx.policy if ctx.vision_features and not is_sharded(ctx.policy) else None
        item.scoring = self.pool.submit(self._score, item, item.handle.wait, ctx.processor, vision, ctx.device)
        self.queue.append(item)

    def _score(self, item: InFlight, fetch: Any, processor: Any, vision: Any, device: torch.device) -> ScoredRollout:
        rollout = fetch()
        item.rollout = rollout
        scored = self.runner.score(item.batch, rollout, item.iou_threshold)
        # The update's inputs too, while the trainer still runs the update before: its prompts through the
        # processor and, with `vision` (a frozen, unsharded ViT), the ViT's features, off the trainer's path.
        scored.encoded = encode_batch(processor, item.batch, vision, device)
        return scored

    def ready(self) -> bool:
        return len(self.queue) > self.max_staleness

    def pop(self, step: int) -> tuple[ScoredRollout, dict[str, float]]:
        """The oldest rollout, scored, and its figures: staleness (optimizer steps between its weights and the
        policy now updated) and the time the trainer still waited for it."""
        item = self.queue.popleft()
        t0 = time.perf_counter()
        behaviour_step = item.step
        try:
            scored = item.scoring.result() if item.scoring is not None else None
        except Exception:  # noqa: BLE001 - the engine lost its server: recover (or stop) in this thread
            scored = None
        if scored is None:
            if item.rollout is None:  # lost in flight: `result()` raises (stop) or samples again (retry)
                item.rollout = item.handle.result()
                if item.handle.regenerated:
                    behaviour_step = step
            scored = self.runner.score(item.batch, item.rollout, item.iou_threshold)
        waited = time.perf_counter() - t0
        if scored.sampling_logprobs is None:
            raise ValueError("async_rollouts needs the engine's sampling log-probs (keep_logprobs=True; vLLM at a "
                             "temperature other than 1 needs logprobs_mode='processed_logprobs')")
        scored.behaviour_step = behaviour_step
        scored.timings["generate"] = waited  # generation time not hidden behind the update
        stats = {"async/staleness": float(step - behaviour_step), "async/wait": waited,
                 "async/in_flight": float(len(self.queue))}
        return scored, stats

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Completed in-flight rollouts as plain data and tensors (waits for any still generating)."""
        items = []
        for item in self.queue:
            if item.rollout is None:
                item.rollout = item.handle.result()
            items.append({"batch": _batch_state(item.batch), "step": item.step, "iou_threshold": item.iou_threshold,
                          "sampling": vars(item.sampling).copy(), "rollout": _rollout_state(item.rollout)})
        return {"in_flight": items, "last_seed": None if self._last_seed is None else list(self._last_seed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queue = deque(
            InFlight(_batch_from_state(s["batch"]), int(s["step"]), float(s["iou_threshold"]),
                     SamplingConfig(**s["sampling"]), rollout=_rollout_from_state(s["rollout"]))
            for s in state.get("in_flight", []))
        last = state.get("last_seed")  # absent from checkpoints written before dynamic sampling could run async
        self._last_seed = None if last is None else (int(last[0]), int(last[1]))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.queue.clear()


def _batch_state(b: PromptBatch) -> dict[str, Any]:
    images = []
    for im in b.images:
        if im is None:
            images.append(None)
        else:
            rgb = im.convert("RGB")
            images.append(torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
                          .view(rgb.size[1], rgb.size[0], 3).clone())  # [H, W, 3]
    return {"prompts": b.prompts, "images": images, "reward_models": b.reward_models,
            "data_sources": b.data_sources, "image_sizes": [list(s) for s in b.image_sizes]}


def _batch_from_state(s: dict[str, Any]) -> PromptBatch:
    from PIL import Image

    images = [None if t is None else Image.fromarray(t.numpy(), "RGB") for t in s["images"]]
    return PromptBatch(list(s["prompts"]), images, list(s["reward_models"]), list(s["data_sources"]),
                       [tuple(x) for x in s["image_sizes"]])


def _rollout_state(r: Rollout) -> dict[str, Any]:
    return {"prompt_index": r.prompt_index, "completion_ids": r.completion_ids,
            "sampling_logprobs": r.sampling_logprobs, "texts": r.texts, "truncated": r.truncated,
            "spurious_vision_tokens": r.spurious_vision_tokens}


def _rollout_from_state(s: dict[str, Any]) -> Rollout:
    return Rollout(prompt_index=s["prompt_index"], completion_ids=s["completion_ids"],
                   sampling_logprobs=s["sampling_logprobs"], texts=s["texts"], truncated=s["truncated"],
                   spurious_vision_tokens=s["spurious_vision_tokens"])
