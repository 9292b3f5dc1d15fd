"""Rollout engines: turn a batch of prompts into G sampled completions each (see docs/rollout.md).

`VLLMEngine` imports vLLM only when its engine is first built, so importing it here is free.
"""

from lit_triune.rollout.base import Rollout, RolloutEngine, SamplingConfig
from lit_triune.rollout.hf_engine import HFGenerateEngine
from lit_triune.rollout.vllm_engine import VLLMEngine

__all__ = ["HFGenerateEngine", "Rollout", "RolloutEngine", "SamplingConfig", "VLLMEngine"]
