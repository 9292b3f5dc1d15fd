"""The trainer's side of reward computation: a verifier pool (or in-process scoring) behind one call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RewardScorer:
    """Scores completions with `lit_triune.rewards`, in `num_workers` processes (0: in-process)."""

    def __init__(self, num_workers: int = 2, timeout_s: float = 10.0, compat: str | None = None) -> None:
        from lit_triune import rewards

        self.compat = compat
        self.pool = rewards.VerifierPool(num_workers=num_workers, timeout_s=timeout_s) if num_workers > 0 else None
        self._rewards = rewards

    def score(self, responses: list[str], reward_models: list[dict[str, Any]],
              image_sizes: list[tuple[int, int]], iou_threshold: float | None) -> list[dict[str, Any]]:
        if self.pool is not None:
            return self.pool.score_batch(responses, reward_models, image_sizes=image_sizes,
                                         iou_threshold=iou_threshold, compat=self.compat)
        return self._rewards.score_batch(responses, reward_models, image_sizes=image_sizes,
                                         iou_threshold=iou_threshold, compat=self.compat)

    def submit(self, responses: list[str], reward_models: list[dict[str, Any]],
               image_sizes: list[tuple[int, int]], iou_threshold: float | None) -> Callable[[], list[dict[str, Any]]]:
        """Queues the batch in the pool and returns at once; calling the result waits for the scores (in order).
        In-process (no pool) it scores now."""
        if self.pool is None:
            results = self.score(responses, reward_models, image_sizes, iou_threshold)
            return lambda: results
        if len(responses) != len(reward_models) or len(image_sizes) != len(responses):
            raise ValueError(f"got {len(responses)} responses, {len(reward_models)} reward_models and "
                             f"{len(image_sizes)} image_sizes; lengths must match")
        futures = [self.pool.submit(r, rm, s, iou_threshold, self.compat)
                   for r, rm, s in zip(responses, reward_models, image_sizes, strict=True)]
        return lambda: [f.result() for f in futures]

    def failure_counts(self) -> dict[str, Any]:
        return self.pool.failure_counts() if self.pool is not None else {}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
