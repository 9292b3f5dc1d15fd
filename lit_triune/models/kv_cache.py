"""Prompt key/value caches shared by the rows that continue one prompt (transformers `DynamicCache`).

A prompt's keys/values are computed once and handed to each of its G completions, by generation
(`cache_rows`, the HF engine's shared prefill) and by the trainer's shared-prefix log-probs
(`RecordPrefix` / `ReadPrefix`, safe under activation checkpointing). The copies are `index_select`s,
whose backward sums the rows' gradients into the prompt's keys/values.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers import DynamicCache


def cache_rows(cache: Any, rows: Tensor, config: Any) -> Any:
    """A new DynamicCache whose row i is row `rows[i]` ([M] long) of `cache`, every layer: a prompt's
    keys/values handed to each of its completions (`index_select`: its backward sums the rows' gradients)."""
    out = DynamicCache(config=config)
    for layer_idx, layer in enumerate(cache.layers):
        out.update(layer.keys.index_select(0, rows), layer.values.index_select(0, rows), layer_idx)
    return out


class RecordPrefix(DynamicCache):
    """The shared prompts' keys/values per layer, recorded so that activation checkpointing is safe.

    A checkpointed layer runs its forward a second time during backward and calls the cache's `update`
    again; a DynamicCache would append the prompt's keys twice (which is why HF drops caches under
    checkpointing). This `update` overwrites the layer's entry instead, so the replay writes the same
    states again. Read back per row through `ReadPrefix`.
    """

    def update(self, key_states: Tensor, value_states: Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        while len(self.layers) <= layer_idx:
            self.layers.append(self.layer_class_to_replicate())
        layer = self.layers[layer_idx]
        if not layer.is_initialized:
            layer.lazy_initialization(key_states, value_states)
        layer.keys, layer.values = key_states, value_states  # [U, heads, Lp, d]: overwritten, not appended
        return key_states, value_states


class ReadPrefix(DynamicCache):
    """Row i attends to the recorded prefix of prompt `rows[i]`; `update` returns prefix + new states
    without storing them, so a checkpointed layer's replay reads the same prefix again."""

    def __init__(self, recorded: RecordPrefix, rows: Tensor) -> None:  # rows: [M] long
        super().__init__()
        for layer in recorded.layers:
            new = self.layer_class_to_replicate()
            new.lazy_initialization(layer.keys, layer.values)
            # index_select: its backward sums the rows' gradients into the prompt's keys/values
            new.keys, new.values = layer.keys.index_select(0, rows), layer.values.index_select(0, rows)
            self.layers.append(new)

    def update(self, key_states: Tensor, value_states: Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        layer = self.layers[layer_idx]  # returns [M, heads, Lp + t, d]; keeps the prefix only
        return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)
