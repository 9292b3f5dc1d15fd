"""Prompt key/value caches shared by the rows that continue one prompt (transformers `DynamicCache`).

A prompt's keys/values are computed once and handed to each of its G completions, by generation
(`cache_rows`, the HF engine's shared prefill) and by the trainer's shared-prefix log-probs
(`RecordPrefix` / `ReadPrefix`, safe under activation checkpointing). The copies are `index_select`s,
whose backward sums the rows' gradients into the prompt's keys/values. Decoding writes each new token's
keys/values in place into rows with room for them (`PreallocatedLayer`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


def cache_rows(cache: Any, rows: Tensor, config: Any, room: int = 0) -> Any:
    """A new DynamicCache whose row i is row `rows[i]` ([M] long) of `cache`, every layer: a prompt's
    keys/values handed to each of its completions (`index_select`: its backward sums the rows' gradients).
    `room` > 0 (decoding, no gradients): layers with space for `room` more positions (`PreallocatedLayer`)."""
    out = DynamicCache(config=config)
    for layer_idx, layer in enumerate(cache.layers):
        keys, values = layer.keys.index_select(0, rows), layer.values.index_select(0, rows)
        if room > 0:
            roomy = PreallocatedLayer()
            roomy.fill(keys, values, room)
            if layer_idx < len(out.layers):  # a cache built from a config starts with one empty layer per layer
                out.layers[layer_idx] = roomy
            else:
                out.layers.append(roomy)
        else:
            out.update(keys, values, layer_idx)
    return out


class PreallocatedLayer(DynamicLayer):
    """A decoding cache layer that writes each step's keys/values into a buffer with room for the positions to
    come and hands attention a view of the filled part, where `DynamicLayer` copies the whole cache into a new
    tensor every step. The same values, so the same attention results; it grows (doubling) if ever full.
    For decoding loops that only `update` and read lengths (rollout/decode.py), not for HF's cache surgery
    (crop, reorder), which would act on the view and not the buffer."""

    def fill(self, keys: Tensor, values: Tensor, room: int) -> None:  # [M, heads, L, d] each
        self.lazy_initialization(keys, values)
        self._keys = keys.new_empty((*keys.shape[:-2], keys.shape[-2] + room, keys.shape[-1]))
        self._values = values.new_empty(self._keys.shape)
        self._length = 0
        self._write(keys, values)

    def update(self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.fill(key_states, value_states, room=0)
        else:
            self._write(key_states, value_states)
        return self.keys, self.values

    def _write(self, keys: Tensor, values: Tensor) -> None:
        start, end = self._length, self._length + keys.shape[-2]
        if end > self._keys.shape[-2]:  # full: buffers twice as long, the filled part copied over
            self._keys, self._values = _longer(self._keys, start, 2 * end), _longer(self._values, start, 2 * end)
        self._keys[..., start:end, :].copy_(keys)
        self._values[..., start:end, :].copy_(values)
        self._length = end
        self.keys, self.values = self._keys[..., :end, :], self._values[..., :end, :]  # [M, heads, end, d] views


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


def _longer(buffer: Tensor, filled: int, length: int) -> Tensor:  # [M, heads, *, d] -> [M, heads, length, d]
    out = buffer.new_empty((*buffer.shape[:-2], length, buffer.shape[-1]))
    out[..., :filled, :].copy_(buffer[..., :filled, :])
    return out
