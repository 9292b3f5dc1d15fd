"""The part of `generate` every engine shares: argument checks and chunking for reward overlap.

An engine implements `_generate_block(prompts, images, sampling, first_prompt, seed) -> Rollout` for
one chunk; this base turns it into `generate` (whole batch, optional `on_chunk` callback) and
`generate_chunks` (a lazy iterator, so chunk k can be scored while chunk k+1 generates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from lit_triune.rollout.base import Rollout, SamplingConfig
from lit_triune.rollout.vision_tokens import concat_rollouts

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
    ) -> Rollout:
        """G = `sampling.n` completions per prompt, rows prompt-major (row i*G + g). `on_chunk(rows, part)`
        is called after each chunk with its global row indices ([M] long) before the next one starts.
        `encoded` (engines with `accepts_encoded`): `encode_prompts(processor, prompts, images)`, possibly
        with `image_features` set, so the engine neither re-runs the processor nor the vision tower."""
        parts = []
        for rows, part in self.generate_chunks(prompts, images, sampling, encoded=encoded):
            if on_chunk is not None:
                on_chunk(rows, part)
            parts.append(part)
        return concat_rollouts(parts)

    def generate_chunks(
        self, prompts: list[str], images: list[Any], sampling: SamplingConfig, *, encoded: Any = None
    ) -> Iterator[tuple[Tensor, Rollout]]:
        """Yields `(rows, part)` per chunk of `chunk_size` prompts, lazily: chunk k+1 is generated only when
        the caller asks for it, so submitting chunk k to a reward pool (other processes) before the next
        `next()` overlaps scoring with generation. `part.prompt_index` holds global prompt indices;
        `rows` ([M] long) say where the part sits in the full rollout. Chunk k uses seed `sampling.seed + k`
        (chunked and unchunked runs sample differently; each is reproducible)."""
        check_sampling(sampling)
        images = check_batch(prompts, images)
        if encoded is not None:
            if not self.accepts_encoded:
                raise TypeError(f"{type(self).__name__} does not take pre-encoded prompts (encoded=...)")
            if len(encoded) != len(prompts):
                raise ValueError(f"encoded holds {len(encoded)} prompts but {len(prompts)} prompts were given")
        step = self.chunk_size or len(prompts)
        g = sampling.n
        for k, start in enumerate(range(0, len(prompts), step)):
            stop = min(start + step, len(prompts))
            seed = None if sampling.seed is None else sampling.seed + k
            extra = {} if encoded is None else {"encoded": encoded.select(list(range(start, stop)))}
            part = self._generate_block(prompts[start:stop], images[start:stop], sampling, start, seed, **extra)
            yield torch.arange(start * g, stop * g), part
