"""`cache_rows` hands each completion its prompt's keys/values; with `room`, into `PreallocatedLayer`s that a
decoding loop fills in place: every step reads the same keys/values as transformers' `DynamicLayer` (which
copies the whole cache each step), also past the preallocated room."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from lit_triune.models.kv_cache import PreallocatedLayer, cache_rows


def _prompt_cache(layers: int = 2, prompts: int = 2, length: int = 5) -> DynamicCache:
    gen = torch.Generator().manual_seed(0)
    cache = DynamicCache()
    for i in range(layers):
        cache.update(torch.randn(prompts, 1, length, 4, generator=gen), torch.randn(prompts, 1, length, 4, generator=gen),
                     i)
    return cache


def test_rows_with_room_read_what_a_dynamic_cache_reads_step_by_step():
    rows = torch.tensor([0, 0, 0, 1, 1, 1])  # prompt-major, three completions per prompt
    plain, roomy = (cache_rows(_prompt_cache(), rows, None, room=r) for r in (0, 3))
    assert all(isinstance(layer, PreallocatedLayer) for layer in roomy.layers)
    assert not any(isinstance(layer, PreallocatedLayer) for layer in plain.layers)
    gen = torch.Generator().manual_seed(1)
    for step in range(7):  # 3 steps fit the room, then the buffers grow
        for i in range(2):
            k, v = torch.randn(6, 1, 1, 4, generator=gen), torch.randn(6, 1, 1, 4, generator=gen)
            want = plain.update(k, v, i)
            got = roomy.update(k.clone(), v.clone(), i)
            assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1]), (step, i)
        assert roomy.get_seq_length() == plain.get_seq_length() == 5 + step + 1
    assert torch.equal(plain.layers[0].keys[:3, :, :5], plain.layers[0].keys[:1, :, :5].expand(3, -1, -1, -1))


def test_writes_do_not_touch_the_prompt_cache():
    prompt = _prompt_cache()
    before = prompt.layers[0].keys.clone()
    roomy = cache_rows(prompt, torch.tensor([0, 1]), None, room=2)
    roomy.update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4), 0)
    assert torch.equal(prompt.layers[0].keys, before)
