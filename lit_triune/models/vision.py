"""The vision tower's output for a batch of prompts, computed once and reused.

With a frozen vision tower the visual tokens of a rollout batch do not change between generation and
the update's forward passes, so they are computed once here and passed on (`EncodedPrompts.image_features`),
then handed to the model as `mm_encoder_outputs` (`encoder_outputs`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from transformers.modeling_outputs import BaseModelOutputWithPooling

from lit_triune.models.policy_inputs import EncodedPrompts
from lit_triune.models.sharding import fsdp_root, in_root_forward


def image_features(model: Any, prompts: EncodedPrompts) -> tuple[Tensor, ...] | None:
    """Visual tokens of each prompt's image: B tensors [tokens_i, H]. Computed once per rollout batch
    when the vision tower is frozen, then reused by every forward pass of the update."""
    if prompts.pixel_values is None:
        return None
    if fsdp_root(model) is not None:  # FSDP: as one root forward (lit_triune/models/sharding.py)
        return in_root_forward(model, image_features, prompts)
    return visual_tokens(model, prompts.pixel_values, prompts.image_grid_thw)


def visual_tokens(model: Any, pixel_values: Tensor, image_grid_thw: Tensor) -> tuple[Tensor, ...]:
    """The vision tower (and merger) of Qwen-VL `model` on the patches of n images ([P, D], grids [n, 3]):
    n tensors [tokens_i, H]. Gradients flow when the tower trains."""
    inner = model.model
    out = inner.get_image_features(pixel_values.to(inner.visual.dtype), image_grid_thw, return_dict=True)
    return tuple(out.pooler_output)


def encoder_outputs(features: tuple[Tensor, ...]) -> dict[str, Any]:
    """Precomputed visual tokens (one tensor [tokens_i, H] per image) in the form a transformers forward or
    `generate` takes as `mm_encoder_outputs`, in place of running the vision tower on `pixel_values`."""
    return {"image": BaseModelOutputWithPooling(pooler_output=features)}
