"""Rollout engines: turn a batch of prompts into G sampled completions each (see docs/rollout.md).

`VLLMEngine` imports vLLM only when its engine is first built, so importing it here is free. `RemoteEngine`
runs either engine in a rollout server process (lit_triune/rollout/server.py).
"""

from lit_triune.rollout.base import Rollout, RolloutEngine, SamplingConfig
from lit_triune.rollout.hf_engine import HFGenerateEngine
from lit_triune.rollout.remote import RemoteEngine, RolloutServerLost
from lit_triune.rollout.vllm_engine import VLLMEngine

__all__ = ["HFGenerateEngine", "RemoteEngine", "Rollout", "RolloutEngine", "RolloutServerLost", "SamplingConfig",
           "VLLMEngine"]
