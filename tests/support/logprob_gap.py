"""How far an engine's sampling log-probs are from a policy's own: the check every engine test makes."""

from __future__ import annotations

from typing import Any

import torch

from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
from lit_triune.rl.logprobs import completion_logprobs


def trainer_logprobs(model: Any, processor: Any, prompts: list, images: list, rollout: Any) -> torch.Tensor:  # [N, T]
    """`model`'s log-probs of the rollout's sampled tokens, as the update computes them."""
    enc = encode_prompts(processor, prompts, images)
    inputs = build_policy_inputs(model, enc, rollout.completion_ids, rollout.prompt_index,
                                 processor.tokenizer.pad_token_id, model.config.image_token_id)
    with torch.no_grad():
        return completion_logprobs(model, inputs)


def sampling_gap(model: Any, processor: Any, prompts: list, images: list, rollout: Any) -> float:
    """Largest |engine's sampling log-prob - `model`'s| over every sampled token of the rollout."""
    ref = trainer_logprobs(model, processor, prompts, images, rollout)  # [N, T]
    return max((torch.tensor(lp) - ref[i, : len(lp)]).abs().max().item()
               for i, lp in enumerate(rollout.sampling_logprobs) if lp)
