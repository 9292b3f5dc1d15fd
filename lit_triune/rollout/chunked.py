"""The part of `generate` every engine shares: argument checks and chunking for reward overlap.

An engine implements `_generate_block(prompts, images, sampling, first_prompt, seed) -> Rollout` for
one chunk; this base turns it into `generate` (whole batch, optional `on_chunk` callback) and
`generate_chunks` (a lazy iterator, so chunk k can be scored while chunk k+1 generates).

Length groups: a static-batch backend (HF `generate`) runs every row of a call until the longest one
stops, so one 90-token box list keeps 127 finished 12-token rows computing. Given a key per prompt that
predicts its answer length (the trainer passes each prompt's data source), an engine with
`split_by_length_key` generates each key's prompts as their own blocks and the rows are put back in
prompt order (benchmarks/generation_blocks.py measures the gain on the CPU default's mix).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from lit_triune.rollout.base import Rollout, SamplingConfig
from lit_triune.rollout.vision_tokens import concat_rollouts, select_rows

ChunkCallback = Callable[[Tensor, Rollout], None]  # (rows [M] long, the chunk's rollout)


def check_sampling(sampling: SamplingConfig) -> None:
    """Rejects settings neither engine can honour, naming the field (user input: no `assert`)."""
    if sampling.n < 1:
        raise ValueError(f"SamplingConfig.n (group size) must be >= 1, got {sampling.n}")
    if sampling.max_new_tokens < 1:
        raise ValueError(f"SamplingConfig.max_new_tokens must be >= 1, got {sampling.max_new_tokens}")
    if sampling.temperature < 0:
        raise ValueError(f"SamplingConfig.temperature must be >= 0 (0 = greedy), got {sampling.temperature}")
    if not 0.0 < sampling.top_p <= 1.0:
        raise ValueError(f"SamplingConfig.top_p must be in (0, 1], got {sampling.top_p}")
    if sampling.top_k < -1:
        raise ValueError(f"SamplingConfig.top_k must be 0 or -1 (off) or >= 1, got {sampling.top_k}")


def check_batch(prompts: list[str], images: list[Any] | None) -> list[Any]:
    if not prompts:
        raise ValueError("generate() needs at least one prompt")
    if images is None:
        return [None] * len(prompts)
    if len(images) != len(prompts):
        raise ValueError(
            f"got {len(prompts)} prompts but {len(images)} images; pass one image (or None) per prompt"
        )
    return list(images)


class ChunkedEngine:
    """Base of the engines: `chunk_size` prompts per backend call (None: the whole batch at once)."""

    chunk_size: int | None = None

    # True for engines whose `_generate_block` takes `encoded=` (prompts already through the processor,
    # optionally with precomputed image features), which `generate(..., encoded=...)` hands down per chunk.
    accepts_encoded: bool = False

    # True for static-batch backends: `length_keys` then splits a batch into one block per key (see above).
    # Engines that drop finished rows themselves (vLLM's continuous batching) keep one call per chunk.
    split_by_length_key: bool = False

    def _generate_block(
        self,
        prompts: list[str],
        images: list[Any],
        sampling: SamplingConfig,
        first_prompt: int,
        seed: int | None,
    ) -> Rollout:
        raise NotImplementedError

    def generate(
        self,
        prompts: list[str],
        images: list[Any],
        sampling: SamplingConfig,
        *,
        on_chunk: ChunkCallback | None = None,
        encoded: Any = None,
        length_keys: Sequence[Hashable] | None = None,
    ) -> Rollout:
        """G = `sampling.n` completions per prompt, rows prompt-major (row i*G + g). `on_chunk(rows, part)`
        is called after each chunk with its global row indices ([M] long) before the next one starts.
        `encoded` (engines with `accepts_encoded`): `encode_prompts(processor, prompts, images)`, possibly
        with `image_features` set, so the engine neither re-runs the processor nor the vision tower.
        `length_keys`: one key per prompt predicting its answer length (see the module docstring)."""
        row_parts, parts = [], []
        for rows, part in self.generate_chunks(prompts, images, sampling, encoded=encoded, length_keys=length_keys):
            if on_chunk is not None:
                on_chunk(rows, part)
            row_parts.append(rows)
            parts.append(part)
        rollout = concat_rollouts(parts)
        order = torch.cat(row_parts)  # [N]: the full rollout's row held at each position of `rollout`
        if torch.equal(order, torch.arange(len(order))):
            return rollout
        return select_rows(rollout, torch.argsort(order))

    def generate_chunks(
        self,
        prompts: list[str],
        images: list[Any],
        sampling: SamplingConfig,
        *,
        encoded: Any = None,
        length_keys: Sequence[Hashable] | None = None,
    ) -> Iterator[tuple[Tensor, Rollout]]:
        """Yields `(rows, part)` per chunk of `chunk_size` prompts, lazily: chunk k+1 is generated only when
        the caller asks for it, so submitting chunk k to a reward pool (other processes) before the next
        `next()` overlaps scoring with generation. `part.prompt_index` holds global prompt indices;
        `rows` ([M] long) say where the part sits in the full rollout. Chunk k uses seed `sampling.seed + k`
        (chunked and unchunked runs sample differently; each is reproducible). With `length_keys` (and
        `split_by_length_key`), each key's prompts, in order of first appearance, form their own chunks, so
        `rows` need not be contiguous."""
        check_sampling(sampling)
        images = check_batch(prompts, images)
        if encoded is not None:
            if not self.accepts_encoded:
                raise TypeError(f"{type(self).__name__} does not take pre-encoded prompts (encoded=...)")
            if len(encoded) != len(prompts):
                raise ValueError(f"encoded holds {len(encoded)} prompts but {len(prompts)} prompts were given")
        if length_keys is not None and len(length_keys) != len(prompts):
            raise ValueError(f"got {len(length_keys)} length_keys for {len(prompts)} prompts; pass one per prompt")
        g = sampling.n
        for k, block in enumerate(self._blocks(len(prompts), length_keys)):
            seed = None if sampling.seed is None else sampling.seed + k
            extra = {} if encoded is None else {"encoded": encoded.select(block)}
            part = self._generate_block([prompts[i] for i in block], [images[i] for i in block], sampling,
                                        block[0], seed, **extra)
            index = torch.tensor(block, dtype=torch.long)  # [b] the block's prompts, global indices
            if block != list(range(block[0], block[0] + len(block))):  # engines number a block's prompts from
                part.prompt_index = index.repeat_interleave(g)  # first_prompt on: put in the real ones, [b*G]
            yield (index[:, None] * g + torch.arange(g)).reshape(-1), part

    def _splits_by_length_key(self) -> bool:
        return self.split_by_length_key

    def _blocks(self, n: int, length_keys: Sequence[Hashable] | None) -> list[list[int]]:
        """Prompt indices per backend call: runs of `chunk_size`, within one length key when splitting."""
        groups: dict[Hashable, list[int]] = {}
        if length_keys is not None and self._splits_by_length_key():
            for i, key in enumerate(length_keys):
                groups.setdefault(key, []).append(i)
        else:
            groups[None] = list(range(n))
        blocks = []
        for members in groups.values():
            step = self.chunk_size or len(members)
            blocks.extend(members[start:start + step] for start in range(0, len(members), step))
        return blocks
