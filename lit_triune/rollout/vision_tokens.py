"""Token bookkeeping both engines share: which ids must never be sampled, which ids stop a completion,
and how raw sampled rows become a `Rollout` (cut at the stop, spurious vision tokens removed, decoded).

Why the vision tokens matter: a sampled `<|image_pad|>` makes the next forward pass count one more image
token than there are image features ("image features and image tokens do not match" in vLLM and in the
trainer's recompute), so they are masked out of sampling and, should one slip through anyway (a custom
engine, a mask turned off), cut from the completion before it is scored or trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lit_triune.rollout.base import Rollout

VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def _known_ids(tokenizer: Any, tokens: Sequence[str]) -> list[int]:
    """Ids of the tokens that exist as single tokens in `tokenizer` (unknown ones are skipped).

    A lookup per token, checked by mapping the id back (an unknown token maps to the unk id or None), not
    `get_vocab()`, which builds a dict of the whole vocabulary (~150k entries for Qwen) on every call; the
    engines ask for these ids on every generation call."""
    ids = []
    for token in tokens:
        i = tokenizer.convert_tokens_to_ids(token)
        if i is not None and tokenizer.convert_ids_to_tokens(int(i)) == token:
            ids.append(int(i))
    return ids


def known_vision_tokens(tokenizer: Any) -> list[str]:
    """The vision/pad tokens (strings) this tokenizer has as single tokens: vLLM's `bad_words` form of the mask."""
    known = set(vision_token_ids(tokenizer))
    return [t for t in VISION_TOKENS if tokenizer.convert_tokens_to_ids(t) in known]


def vision_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the Qwen vision/pad tokens present in this tokenizer."""
    return _known_ids(tokenizer, VISION_TOKENS)


def stop_token_ids(tokenizer: Any) -> list[int]:
    """`<|im_end|>` ends an assistant turn; `<|endoftext|>` ends a document. Either stops a completion."""
    ids = _known_ids(tokenizer, STOP_TOKENS)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None and int(eos) not in ids:
        ids.append(int(eos))
    if not ids:
        raise ValueError(f"tokenizer has none of the stop tokens {STOP_TOKENS} and no eos_token_id")
    return ids


def pad_token_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = stop_token_ids(tokenizer)[-1]
    return int(pad)


def cut_at_stop(ids: Sequence[int], stops: set[int]) -> tuple[int, bool]:
    """Length to keep (stop token included) and whether the row was truncated (no stop token at all)."""
    for i, tok in enumerate(ids):
        if tok in stops:
            return i + 1, False
    return len(ids), True


def assemble_rollout(
    tokenizer: Any,
    raw_ids: list[list[int]],  # N rows of sampled tokens, possibly with padding after the stop
    raw_logprobs: list[list[float]] | None,  # N rows aligned with raw_ids
    prompt_index: torch.Tensor,  # [N] long
    *,
    stops: Sequence[int],
    vision_ids: Sequence[int],
    timings: dict[str, float] | None = None,
) -> Rollout:
    """Cuts each row after its first stop token, drops spurious vision tokens (ids, log-probs and text
    alike, so the trainer's forward never sees an unmatched image token) and decodes the texts."""
    stop_set, vision_set = set(int(s) for s in stops), set(int(v) for v in vision_ids)
    ids_out: list[list[int]] = []
    lps_out: list[list[float]] | None = [] if raw_logprobs is not None else None
    truncated, spurious = [], []
    for row, ids in enumerate(raw_ids):
        keep, was_truncated = cut_at_stop(ids, stop_set)
        ids = [int(t) for t in ids[:keep]]
        lps = list(raw_logprobs[row][:keep]) if raw_logprobs is not None else None
        bad = [i for i, t in enumerate(ids) if t in vision_set]
        if bad:
            drop = set(bad)
            ids = [t for i, t in enumerate(ids) if i not in drop]
            lps = None if lps is None else [v for i, v in enumerate(lps) if i not in drop]
        ids_out.append(ids)
        if lps_out is not None:
            lps_out.append([float(v) for v in lps])
        truncated.append(was_truncated)
        spurious.append(len(bad))
    texts = tokenizer.batch_decode(ids_out, skip_special_tokens=True) if ids_out else []
    return Rollout(
        prompt_index=prompt_index.long().clone(),
        completion_ids=ids_out,
        sampling_logprobs=lps_out,
        texts=list(texts),
        truncated=torch.tensor(truncated, dtype=torch.bool),
        spurious_vision_tokens=torch.tensor(spurious, dtype=torch.long),
        timings=dict(timings or {}),
    )


def concat_rollouts(parts: Sequence[Rollout]) -> Rollout:
    """Joins chunk rollouts (already carrying global prompt indices) in order; timings are summed."""
    if not parts:
        raise ValueError("no rollout parts to concatenate")
    timings: dict[str, float] = {}
    for p in parts:
        for k, v in p.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    has_lps = all(p.sampling_logprobs is not None for p in parts)
    return Rollout(
        prompt_index=torch.cat([p.prompt_index for p in parts]),
        completion_ids=[ids for p in parts for ids in p.completion_ids],
        sampling_logprobs=[lp for p in parts for lp in p.sampling_logprobs] if has_lps else None,
        texts=[t for p in parts for t in p.texts],
        truncated=torch.cat([p.truncated for p in parts]),
        spurious_vision_tokens=torch.cat([p.spurious_vision_tokens for p in parts]),
        timings=timings,
    )


def select_rows(rollout: Rollout, rows: Tensor) -> Rollout:
    """The rollout's rows `rows` ([M] long), in that order; timings kept."""
    idx = rows.tolist()
    lps = rollout.sampling_logprobs
    return Rollout(
        prompt_index=rollout.prompt_index[rows],
        completion_ids=[rollout.completion_ids[i] for i in idx],
        sampling_logprobs=None if lps is None else [lps[i] for i in idx],
        texts=[rollout.texts[i] for i in idx],
        truncated=rollout.truncated[rows],
        spurious_vision_tokens=rollout.spurious_vision_tokens[rows],
        timings=dict(rollout.timings),
    )
