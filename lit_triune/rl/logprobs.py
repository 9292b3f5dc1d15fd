"""Per-token log-probabilities of sampled completions under the policy (the trainer's own recompute)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers.modeling_outputs import BaseModelOutputWithPooling

from lit_triune.rl.policy_inputs import EncodedPrompts, PolicyInputs


def image_features(model: Any, prompts: EncodedPrompts) -> tuple[Tensor, ...] | None:
    """Visual tokens of each prompt's image: B tensors [tokens_i, H]. Computed once per rollout batch
    when the vision tower is frozen, then reused by every forward pass of the update."""
    if prompts.pixel_values is None:
        return None
    inner = model.model
    out = inner.get_image_features(
        prompts.pixel_values.to(inner.visual.dtype), prompts.image_grid_thw, return_dict=True
    )
    return tuple(out.pooler_output)


def _forward_hidden(model: Any, inputs: PolicyInputs, features: tuple[Tensor, ...] | None) -> Tensor:
    kwargs: dict[str, Any] = {}
    if features is not None:
        rows = tuple(features[i] for i in inputs.prompt_index.tolist())
        kwargs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=rows)}
    elif inputs.pixel_values is not None:
        kwargs["pixel_values"] = inputs.pixel_values
        kwargs["image_grid_thw"] = inputs.image_grid_thw
    out = model.model(
        input_ids=inputs.input_ids,
        attention_mask=inputs.attention_mask,
        position_ids=inputs.position_ids,
        use_cache=False,
        **kwargs,
    )
    return out.last_hidden_state  # [N, L, H]


def completion_logprobs(
    model: Any,
    inputs: PolicyInputs,
    *,
    temperature: float = 1.0,
    features: tuple[Tensor, ...] | None = None,
) -> Tensor:  # [N, T] float32, 0 where completion_mask is False
    """log π(token | prefix) for each completion token, from logits divided by the sampling temperature.

    Only the T completion positions go through the LM head, so memory is O(N·T·V), not O(N·L·V).
    `features` (from `image_features`) replaces the vision tower's forward pass.
    """
    hidden = _forward_hidden(model, inputs, features)  # [N, L, H]
    n, t = inputs.completion_ids.shape
    offsets = torch.arange(t, device=hidden.device)  # [T]
    # Token k of the completion is predicted by the hidden state one position earlier.
    positions = (inputs.prompt_lengths.to(hidden.device).unsqueeze(1) - 1 + offsets).clamp(
        max=hidden.shape[1] - 1
    )  # [N, T]
    picked = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))  # [N, T, H]
    logits = model.lm_head(picked).float() / temperature  # [N, T, V]
    logps = torch.log_softmax(logits, dim=-1)
    token_logps = logps.gather(-1, inputs.completion_ids.to(hidden.device).unsqueeze(-1)).squeeze(-1)
    return token_logps.masked_fill(~inputs.completion_mask.to(hidden.device), 0.0)  # [N, T]
