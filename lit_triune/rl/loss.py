"""Clipped policy-gradient losses for GRPO / DAPO. Plain torch: no Lightning, no I/O, no globals."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_behaviour_weight_cap(cap: float | None) -> None:
    """A truncation of π_old / π_behaviour: None (none) or >= 1 (a cap below 1 would shrink every on-policy
    token's weight, not truncate the stale ones)."""
    if cap is not None and not cap >= 1.0:
        raise ValueError(f"behaviour_weight_cap must be >= 1 or None, got {cap}")


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
    behaviour_logprobs: Tensor | None = None,  # [N, T] the (older) policy that sampled the rows; no grad
    behaviour_weight_cap: float | None = None,  # truncate π_old / π_behaviour at this value (None: no cap)
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

    `behaviour_logprobs` (asynchronous rollouts: the rows were sampled by weights some updates older):
    the decoupled objective of Hilton et al. 2021 (arXiv:2110.00641), as AReaL trains one-step-stale
    rollouts (Fu et al. 2025, arXiv:2505.24298). `old_logprobs` is then the proximal policy (the weights
    before this update), the trust region is taken around it, and each token's clipped surrogate is
    weighted by the importance weight π_old / π_behaviour, truncated at `behaviour_weight_cap`
    (truncated importance sampling; the KL term is not weighted).
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
    behaviour_log_ratio = None  # [N, T] log π_old / π_behaviour, 0 where the mask is False (padding there)
    if behaviour_logprobs is not None:
        check_behaviour_weight_cap(behaviour_weight_cap)
        behaviour_log_ratio = torch.where(mask, (old_logprobs - behaviour_logprobs).detach(), 0.0)
        # the exponent is bounded so no weight is inf (inf · 0 would be nan)
        limit = 20.0 if behaviour_weight_cap is None else min(20.0, math.log(behaviour_weight_cap))
        per_token = per_token * torch.exp(behaviour_log_ratio.clamp(max=limit))  # [N, T] truncated weights
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
        if behaviour_log_ratio is not None:
            diagnostics["behaviour_ratio_mean"] = (torch.exp(behaviour_log_ratio.clamp(max=20.0)) * maskf).sum() / valid
            diagnostics["approx_kl_behaviour"] = ((-behaviour_log_ratio) * maskf).sum() / valid
            if behaviour_weight_cap is not None:
                capped = behaviour_log_ratio > math.log(behaviour_weight_cap)
                diagnostics["behaviour_capped"] = (capped.to(maskf.dtype) * maskf).sum() / valid
    return loss, diagnostics


class ClippedPolicyLoss:
    """The policy loss of an update as a configurable object (`model.loss: {class_path: ...}`).

    Holds the clip range, the optional dual clip and k3 KL weight; subclasses fix the aggregation, the one
    thing that tells GRPO, DAPO and Dr. GRPO apart (`policy_loss`). The attributes are read at every
    update, so a `ScheduledValue(attr="loss.clip_high", ...)` callback can schedule them. `kl_coef` is read
    once more when the model is built: a reference policy is loaded only when it is non-zero then.

    Args:
        clip_low: ε_low of the clipped surrogate (paper 0.2).
        clip_high: ε_high, the clip-higher bound (paper 0.28; set it equal to `clip_low` for plain PPO clipping).
        dual_clip: dual-clip constant c > 1 for negative-advantage tokens (the released V-Triune script: 3),
            None for off (paper).
        kl_coef: weight of a k3 KL term to the initial policy; 0 (paper) loads no reference model.
        behaviour_weight_cap: asynchronous rollouts only (`TriuneModule(async_rollouts=True)` with the
            "decoupled" objective): each token's importance weight π_old / π_behaviour is truncated at this
            value (verl's truncated importance sampling uses 2); None for no cap.
    """

    aggregation = "token"

    def __init__(self, clip_low: float = 0.2, clip_high: float = 0.28, dual_clip: float | None = None,
                 kl_coef: float = 0.0, behaviour_weight_cap: float | None = 2.0) -> None:
        if not (0.0 <= clip_low < 1.0 and clip_high >= 0.0):
            raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, got {clip_low}, {clip_high}")
        if dual_clip is not None and dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1 or None, got {dual_clip}")
        if kl_coef < 0.0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        check_behaviour_weight_cap(behaviour_weight_cap)
        self.clip_low, self.clip_high, self.dual_clip, self.kl_coef = clip_low, clip_high, dual_clip, kl_coef
        self.behaviour_weight_cap = behaviour_weight_cap

    def __call__(
        self,
        logprobs: Tensor,  # [N, T]
        old_logprobs: Tensor,  # [N, T]
        advantages: Tensor,  # [N]
        mask: Tensor,  # [N, T] bool
        *,
        num_tokens: Tensor | float | None = None,
        max_completion_length: int | None = None,
        ref_logprobs: Tensor | None = None,  # [N, T]
        behaviour_logprobs: Tensor | None = None,  # [N, T]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        return policy_loss(logprobs, old_logprobs, advantages, mask, clip_low=self.clip_low,
                           clip_high=self.clip_high, aggregation=self.aggregation,
                           max_completion_length=max_completion_length, num_tokens=num_tokens,
                           ref_logprobs=ref_logprobs, kl_coef=self.kl_coef, dual_clip=self.dual_clip,
                           behaviour_logprobs=behaviour_logprobs, behaviour_weight_cap=self.behaviour_weight_cap)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(clip_low={self.clip_low}, clip_high={self.clip_high}, "
                f"dual_clip={self.dual_clip}, kl_coef={self.kl_coef}, behaviour_weight_cap={self.behaviour_weight_cap})")


class DAPOLoss(ClippedPolicyLoss):
    """Token-level aggregation over the whole rollout batch (DAPO; V-Triune trains with it): the default."""

    aggregation = "token"


class GRPOLoss(ClippedPolicyLoss):
    """Mean over each completion's tokens, then over completions (the original GRPO)."""

    aggregation = "sequence"


class DrGRPOLoss(ClippedPolicyLoss):
    """Sum over tokens divided by N · max_new_tokens (Dr. GRPO, Liu et al. 2025, arXiv:2503.20783)."""

    aggregation = "fixed"
