"""Token-by-token sampling over a KV cache, without transformers' `generate` machinery.

The HF engine's training path (G > 1 samples of image prompts, no top-k/top-p) already prefills each prompt
once (`hf_engine._shared_prefill`) and draws its own tokens (`_MaskAndRecord`); what `generate` still adds
per token is bookkeeping sized for every model and option it supports: input preparation, the logits-processor
and stopping-criteria lists, a generic 3-D position computation from the whole attention mask, output dicts.
On the tiny model that is a sizeable share of each decoding step (benchmarks/vs_trl.py --ablations,
`own_decode`). `decode` runs the same arithmetic in a plain loop: the language model on the previous token
with the cache, `lm_head` on its last hidden state, `next_tokens(sequences, logits)` for the next token.
Finished rows continue with the pad token until every row has stopped, as `generate` does, so the tokens
and random draws are the ones `generate` gives (tests/rollout/test_decode.py).

Qwen-VL's multimodal rotary positions: after the prompt, a text token's three position indices are equal,
its (left-padding-free) index plus the prompt's `rope_deltas`, which the prefill left on `model.model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

# (sequences [N, L'], float32 logits [N, V]) -> next token of each row [N] long
NextTokens = Callable[[Tensor, Tensor], Tensor]


def decode(
    model: nn.Module,
    input_ids: Tensor,  # [N, L] left-padded; the cache holds all but the last column
    attention_mask: Tensor,  # [N, L]
    cache: Any,
    next_tokens: NextTokens,
    *,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
) -> Tensor:  # [N, L + T], T <= max_new_tokens
    """Samples up to `max_new_tokens` tokens per row; stops early once every row has emitted a stop token.

    `model` is a Qwen-VL conditional-generation model after a prefill of `input_ids[:, :-1]` into `cache`
    (with `model.model.rope_deltas` [N, 1] set for these rows). Call under `torch.inference_mode()`.
    """
    language_model, lm_head = model.model.language_model, model.lm_head
    deltas = model.model.rope_deltas  # [N, 1]
    n = input_ids.shape[0]
    stops = torch.tensor(list(stop_ids), dtype=input_ids.dtype, device=input_ids.device)  # [S]
    sequences, mask = input_ids, attention_mask
    step_input = input_ids[:, -1:]  # [N, 1]: the prompt's last token first, then each sampled one
    finished = torch.zeros(n, dtype=torch.bool, device=input_ids.device)  # [N]
    attended = mask.sum(-1, keepdim=True)  # [N, 1]: the mask's ones, one more per step (the mask grows by ones)
    for _ in range(max_new_tokens):
        position = (attended - 1 + deltas).unsqueeze(0).expand(3, n, 1)  # [3, N, 1]
        hidden = language_model(input_ids=step_input, attention_mask=mask, position_ids=position,
                                past_key_values=cache, use_cache=True).last_hidden_state  # [N, 1, H]
        logits = lm_head(hidden[:, -1, :]).float()  # [N, V]
        token = next_tokens(sequences, logits)  # [N]
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        sequences = torch.cat([sequences, token[:, None]], dim=1)  # [N, L + t]
        mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)
        attended = attended + 1
        finished |= torch.isin(token, stops)
        step_input = token[:, None]
        if bool(finished.all()):
            break
    return sequences
