"""The rollout engine interface: one call turns a batch of prompts into G sampled completions each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass
class SamplingConfig:
    """How completions are sampled. `n` is the group size G."""

    n: int = 8
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    seed: int | None = None


@dataclass
class Rollout:
    """G completions for each of B prompts, flattened prompt-major: row i*G + g is sample g of prompt i."""

    prompt_index: Tensor  # [N] long, N = B*G: which prompt each row belongs to
    completion_ids: list[list[int]]  # N token lists, stop token included when generation stopped
    sampling_logprobs: list[list[float]] | None  # N lists aligned with completion_ids; None if not kept
    texts: list[str]  # N decoded completions (skip_special_tokens=True), spurious vision tokens removed
    truncated: Tensor  # [N] bool: hit max_new_tokens without a stop token
    spurious_vision_tokens: Tensor  # [N] long: vision/pad tokens sampled despite the mask, removed
    timings: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class RolloutEngine(Protocol):
    """What the RolloutCallback and the difficulty filter need from an engine (HF generate, vLLM)."""

    def generate(self, prompts: list[str], images: list[Any], sampling: SamplingConfig) -> Rollout: ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the next `generate` use `model`'s current weights (a no-op when they share storage)."""
        ...


def policy_checkpoint_path(model: torch.nn.Module, engine: str) -> str:
    """The checkpoint directory `model` was loaded from (`config._name_or_path`), for an engine that loads its own
    copy of the policy; a clear error naming `engine` when the policy does not say."""
    path = getattr(getattr(model, "config", None), "_name_or_path", None)
    if not path:
        raise ValueError(f"{engine} needs model_path: the policy's config has no _name_or_path")
    return str(path)
