"""The vision tower's output for a batch of prompts, computed once and reused.

With a frozen vision tower the visual tokens of a rollout batch do not change between generation and
the update's forward passes, so they are computed once here and passed on (`EncodedPrompts.image_features`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lit_triune.models.policy_inputs import EncodedPrompts
from lit_triune.models.sharding import fsdp_root, in_root_forward


def image_features(model: Any, prompts: EncodedPrompts) -> tuple[Tensor, ...] | None:
    """Visual tokens of each prompt's image: B tensors [tokens_i, H]. Computed once per rollout batch
    when the vision tower is frozen, then reused by every forward pass of the update."""
    if prompts.pixel_values is None:
        return None
    if fsdp_root(model) is not None:  # FSDP: as one root forward (lit_triune/models/sharding.py)
        return in_root_forward(model, image_features, prompts)
    inner = model.model
    out = inner.get_image_features(
        prompts.pixel_values.to(inner.visual.dtype), prompts.image_grid_thw, return_dict=True
    )
    return tuple(out.pooler_output)
