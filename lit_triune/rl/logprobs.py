"""Per-token log-probabilities of sampled completions under the policy (the trainer's own recompute)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from lit_triune.models.kv_cache import ReadPrefix, RecordPrefix
from lit_triune.models.policy_inputs import PolicyInputs, patch_rows
from lit_triune.models.sharding import fsdp_root, in_root_forward
from lit_triune.models.vision import encoder_outputs, visual_tokens
from lit_triune.private_api import keep_cache_under_checkpointing


def _forward_hidden(model: Any, inputs: PolicyInputs, features: tuple[Tensor, ...] | None) -> Tensor:
    kwargs: dict[str, Any] = {}
    if features is not None:
        rows = tuple(features[i] for i in inputs.prompt_index.tolist())
        kwargs["mm_encoder_outputs"] = encoder_outputs(rows)
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


def _shared_prefix_supported(model: Any) -> bool:
    """A Qwen-VL-style layout (vision tower + language model). Activation checkpointing is fine (the
    prefix cache is replay-safe); a reentrant checkpoint is caught after the prompt pass."""
    inner = getattr(model, "model", None)
    return inner is not None and hasattr(inner, "language_model") and hasattr(inner, "get_image_features")


class _ReentrantCheckpointing(RuntimeError):
    """The prompt pass ran under a reentrant checkpoint (no autograd inside): the keys/values it
    recorded carry no gradient, so completions could not back-propagate into the prompt."""


def _completion_hidden_shared_prefix(model: Any, inputs: PolicyInputs,
                                     features: tuple[Tensor, ...] | None) -> Tensor:  # [M, T, H]
    """Hidden states that predict each completion token, with each prompt run once, not once per row.

    The G rows of a group share their prompt (image tokens included), so the prompt goes through the
    language model once per distinct prompt (with gradients), its keys/values are copied to each row
    (`index_select`, whose backward sums the rows' gradients), and only the completions run per row,
    attending to that cache. Same arithmetic as the full rows (positions are the rows' own M-RoPE
    positions, padding is masked), on ~P + G·T tokens per group instead of G·(P + T). A trainable vision
    tower also runs once per prompt.
    """
    inner = model.model
    lm = inner.language_model
    device = inputs.input_ids.device
    uniq, row_to_prompt = torch.unique(inputs.prompt_index, sorted=True, return_inverse=True)  # [U], [M]
    first = torch.full((uniq.numel(),), inputs.prompt_index.numel(), dtype=torch.long, device=device)
    first = first.scatter_reduce(0, row_to_prompt.to(device), torch.arange(row_to_prompt.numel(), device=device),
                                 reduce="amin")  # [U] first row of each prompt
    p_len = inputs.prompt_lengths.to(device)[first]  # [U]
    lp = int(p_len.max())
    prompt_ids = inputs.input_ids[first, :lp]  # [U, Lp] right-padded (rows hold prompt then completion)
    prompt_mask = (torch.arange(lp, device=device) < p_len.unsqueeze(1)).long()  # [U, Lp]
    embeds = inner.get_input_embeddings()(prompt_ids)  # [U, Lp, H]
    image_token_id = getattr(model.config, "image_token_id", None)
    if image_token_id is not None and (prompt_ids == image_token_id).any():
        image_mask = (prompt_ids == image_token_id) & prompt_mask.bool()  # [U, Lp]
        if features is not None:
            rows = [features[i] for i in inputs.prompt_index[first].tolist()]
        else:  # vision tower not cached: run it on each distinct prompt's patches (with gradients if trainable)
            patches = patch_rows(inputs.pixel_values, inputs.image_grid_thw.prod(-1), first.tolist())
            rows = list(visual_tokens(model, patches, inputs.image_grid_thw[first]))
        flat = torch.cat(rows).to(embeds.dtype)  # [image tokens, H]
        embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), flat)
    cache = RecordPrefix()
    with keep_cache_under_checkpointing(lm):  # HF would drop the cache
        prompt_out = lm(inputs_embeds=embeds, attention_mask=prompt_mask,
                        position_ids=inputs.position_ids[:, first, :lp], past_key_values=cache,
                        use_cache=False)  # the given cache is used all the same; False keeps HF's checkpointing quiet
    needs_grad = torch.is_grad_enabled() and (embeds.requires_grad or any(p.requires_grad for p in lm.parameters()))
    if needs_grad and not cache.layers[0].keys.requires_grad:
        raise _ReentrantCheckpointing
    last = prompt_out.last_hidden_state[torch.arange(uniq.numel(), device=device), p_len - 1]  # [U, H]

    m, t = inputs.completion_ids.shape
    r2p = row_to_prompt.to(device)
    rows_cache = ReadPrefix(cache, r2p)
    lengths = inputs.prompt_lengths.to(device)  # [M]
    offsets = torch.arange(t, device=device)  # [T]
    cols = (lengths.unsqueeze(1) + offsets).clamp(max=inputs.position_ids.shape[-1] - 1)  # [M, T]
    positions = inputs.position_ids.gather(2, cols.unsqueeze(0).expand(3, -1, -1))  # [3, M, T]
    mask = torch.cat([prompt_mask.index_select(0, r2p), inputs.completion_mask.long().to(device)], dim=1)
    comp_embeds = inner.get_input_embeddings()(inputs.completion_ids.to(device))  # [M, T, H]
    if t > 1:
        with keep_cache_under_checkpointing(lm):  # HF would drop the cache
            comp_out = lm(inputs_embeds=comp_embeds[:, :-1], attention_mask=mask[:, : lp + t - 1],
                          position_ids=positions[:, :, :-1], past_key_values=rows_cache, use_cache=False)
        # Token 0 is predicted by the prompt's last position, token k by completion token k-1.
        return torch.cat([last.index_select(0, r2p).unsqueeze(1), comp_out.last_hidden_state], dim=1)
    return last.index_select(0, r2p).unsqueeze(1)


def _warn_reentrant() -> None:  # Python's default warning filter shows it once per run
    warnings.warn("shared-prefix update: the model uses reentrant activation checkpointing, under which the "
                  "prompt's cached keys/values carry no gradient; using full rows instead (slower). "
                  "Non-reentrant checkpointing (HF's default, Lightning FSDP's) keeps the shared prefix.",
                  stacklevel=3)


def completion_logprobs(
    model: Any,
    inputs: PolicyInputs,
    *,
    temperature: float = 1.0,
    features: tuple[Tensor, ...] | None = None,
    shared_prefix: bool = True,
) -> Tensor:  # [N, T] float32, 0 where completion_mask is False
    """log π(token | prefix) for each completion token, from logits divided by the sampling temperature.

    Only the T completion positions go through the LM head, so memory is O(N·T·V), not O(N·L·V).
    `features` (from `image_features`) replaces the vision tower's forward pass. `shared_prefix` runs
    each distinct prompt once and only the completions per row (`_completion_hidden_shared_prefix`);
    False runs every full row (prompt + completion), the plain way. Under FSDP the whole computation
    runs as one forward of the policy's root (lit_triune/models/sharding.py), so backward may follow.
    """
    if fsdp_root(model) is not None:
        return in_root_forward(model, completion_logprobs, inputs, temperature=temperature, features=features,
                               shared_prefix=shared_prefix)
    picked = None
    if shared_prefix and _shared_prefix_supported(model):
        try:
            picked = _completion_hidden_shared_prefix(model, inputs, features)  # [N, T, H]
        except _ReentrantCheckpointing:
            _warn_reentrant()
    if picked is None:
        hidden = _forward_hidden(model, inputs, features)  # [N, L, H]
        t = inputs.completion_ids.shape[1]
        offsets = torch.arange(t, device=hidden.device)  # [T]
        # Token k of the completion is predicted by the hidden state one position earlier.
        positions = (inputs.prompt_lengths.to(hidden.device).unsqueeze(1) - 1 + offsets).clamp(
            max=hidden.shape[1] - 1
        )  # [N, T]
        picked = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))  # [N, T, H]
    logits = model.lm_head(picked).float() / temperature  # [N, T, V]
    logps = torch.log_softmax(logits, dim=-1)
    token_logps = logps.gather(-1, inputs.completion_ids.to(picked.device).unsqueeze(-1)).squeeze(-1)
    return token_logps.masked_fill(~inputs.completion_mask.to(picked.device), 0.0)  # [N, T]
