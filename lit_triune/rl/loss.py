"""Clipped policy-gradient losses for GRPO / DAPO. Plain torch: no Lightning, no I/O, no globals."""

from __future__ import annotations

import torch
from torch import Tensor


def policy_loss(
    logprobs: Tensor,  # [N, T] current policy, completion tokens only
    old_logprobs: Tensor,  # [N, T] policy that sampled the rollouts; no grad
    advantages: Tensor,  # [N] group-normalised rewards
    mask: Tensor,  # [N, T] bool, True where the token counts
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    aggregation: str = "token",  # "token" (DAPO), "sequence" (GRPO), "fixed" (Dr. GRPO)
    max_completion_length: int | None = None,  # for "fixed"
    num_tokens: Tensor | float | None = None,  # "token": the normaliser, e.g. tokens of the whole batch
    ref_logprobs: Tensor | None = None,  # [N, T] reference policy, for the optional KL term
    kl_coef: float = 0.0,
    dual_clip: float | None = None,  # c > 1: bound the loss of A < 0 tokens at -c·A (dual-clip PPO)
) -> tuple[Tensor, dict[str, Tensor]]:  # () loss, detached diagnostics
    """Clipped surrogate with clip-higher (DAPO, Yu et al. 2025, arXiv:2503.14476), as V-Triune trains.

    `-min(ρ·A, clip(ρ, 1-ε_low, 1+ε_high)·A)` per token, ρ = exp(logπ - logπ_old). Aggregation:
    "token" sums over every valid token of the batch and divides by `num_tokens` (default: the
    valid tokens in these tensors) — when an update is split into minibatches, pass the token count
    of the whole rollout batch so the minibatch gradients add up to the full-batch one;
    "sequence" averages per sequence, then over sequences (original GRPO); "fixed" divides by
    N·max_completion_length (Dr. GRPO). Equals TRL's `dapo`/`grpo`/`dr_grpo` losses on the same
    tensors (tests/rl/test_loss.py) when `dual_clip` is None. KL: k3 estimator
    `exp(ref-logπ) - (ref-logπ) - 1`, off by default.
    """
    maskf = mask.to(logprobs.dtype)  # [N, T]
    log_ratio = logprobs - old_logprobs  # [N, T]
    ratio = torch.exp(log_ratio)  # [N, T]
    adv = advantages.unsqueeze(1)  # [N, 1]
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.min(unclipped, clipped)  # [N, T]
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        # Ye et al. 2020 (arXiv:1912.09729): a huge ratio on a negative-advantage token cannot blow up
        # the loss. The released V-Triune script enables it (verl's clip_ratio_c = 3).
        per_token = torch.where(adv < 0, torch.min(per_token, -dual_clip * adv), per_token)
    kl = None
    if kl_coef != 0.0:
        if ref_logprobs is None:
            raise ValueError("kl_coef is non-zero but no ref_logprobs were given")
        delta = ref_logprobs - logprobs  # [N, T]
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + kl_coef * kl
    if aggregation == "token":
        denom = maskf.sum() if num_tokens is None else torch.as_tensor(num_tokens, dtype=maskf.dtype)
        loss = (per_token * maskf).sum() / denom.clamp(min=1.0)
    elif aggregation == "sequence":
        loss = ((per_token * maskf).sum(-1) / maskf.sum(-1).clamp(min=1.0)).mean()
    elif aggregation == "fixed":
        if max_completion_length is None:
            raise ValueError("aggregation='fixed' needs max_completion_length")
        loss = (per_token * maskf).sum() / (per_token.shape[0] * max_completion_length)
    else:
        raise ValueError(f"aggregation must be 'token', 'sequence' or 'fixed', got {aggregation!r}")

    with torch.no_grad():
        valid = maskf.sum().clamp(min=1.0)
        low = (ratio < 1.0 - clip_low) & (adv < 0)
        high = (ratio > 1.0 + clip_high) & (adv > 0)
        diagnostics = {
            "clip_ratio/low": (low.to(maskf.dtype) * maskf).sum() / valid,
            "clip_ratio/high": (high.to(maskf.dtype) * maskf).sum() / valid,
            "ratio_mean": (ratio * maskf).sum() / valid,
            "approx_kl_old": ((-log_ratio) * maskf).sum() / valid,
        }
        if kl is not None:
            diagnostics["kl_ref"] = (kl * maskf).sum() / valid
    return loss, diagnostics
