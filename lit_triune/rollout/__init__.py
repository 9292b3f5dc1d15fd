"""Rollout engines: turn a batch of prompts into G sampled completions each (see docs/rollout.md)."""

from lit_triune.rollout.base import Rollout, RolloutEngine, SamplingConfig
from lit_triune.rollout.hf_engine import HFGenerateEngine

__all__ = ["HFGenerateEngine", "Rollout", "RolloutEngine", "SamplingConfig"]
