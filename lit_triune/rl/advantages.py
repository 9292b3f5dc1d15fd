"""Group-relative advantages (GRPO, Shao et al. 2024, arXiv:2402.03300) and DAPO group filtering.

Deviation: completions whose reward could not be computed (the verifier timed out or crashed, an
infrastructure fault, not the model's) can be left out (`valid`): the group's mean and std are then
taken over its scored completions only, and the left-out ones get advantage 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

INFRA_FAILURES = ("timeout", "crash")  # scoring failures that say nothing about the completion
VERIFIER_FAILURE_POLICIES = ("renormalize", "drop_group")


def group_advantages(
    rewards: Tensor,  # [N] float, N = B*G, prompt-major
    group_size: int,
    scale: str = "group",  # "group": divide by the group's std; "batch": by the batch std; "none"
    eps: float = 1e-4,
    valid: Tensor | None = None,  # [N] bool: rows that count; None: all
) -> Tensor:  # [N]
    """(r - mean_group) / (std + eps), std with Bessel's correction — TRL's `scale_rewards` semantics.

    The paper (V-Triune) follows DAPO; whether to scale by std is a recipe choice (Dr. GRPO argues
    against it), so it is an option. A group of identical rewards gets advantage 0 either way. With
    `valid`, statistics use the valid rows only; invalid rows, and groups with fewer than 2 valid
    rows (no relative signal), get 0.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    if valid is not None and not bool(valid.all()):
        return _masked_advantages(rewards, group_size, scale, eps, valid)
    grouped = rewards.view(-1, group_size)  # [B, G]
    centred = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)  # [N]
    if scale == "none":
        return centred
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True).expand_as(grouped).reshape(-1)  # [N]
    else:
        std = rewards.std().expand_as(rewards)  # [N]
    return torch.nan_to_num(centred / (std + eps), nan=0.0)


def _masked_advantages(rewards: Tensor, group_size: int, scale: str, eps: float, valid: Tensor) -> Tensor:  # [N]
    grouped = rewards.view(-1, group_size)  # [B, G]
    v = valid.view(-1, group_size).to(rewards.dtype)  # [B, G]
    n = v.sum(dim=1, keepdim=True)  # [B, 1]
    mean = (grouped * v).sum(dim=1, keepdim=True) / n.clamp(min=1)  # [B, 1]
    centred = (grouped - mean) * v  # [B, G]
    if scale == "group":
        std = ((centred**2).sum(dim=1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()  # [B, 1]
        centred = centred / (std + eps)
    elif scale == "batch":
        kept = rewards[valid.bool()]
        centred = centred / ((kept.std() if kept.numel() > 1 else rewards.new_zeros(())) + eps)
    out = torch.where(n >= 2, centred, torch.zeros_like(centred))  # [B, G]
    return torch.nan_to_num(out.reshape(-1), nan=0.0)


def valid_rows(
    failed: Tensor,  # [N] bool: the scoring failed for infrastructure reasons (INFRA_FAILURES)
    group_size: int,
    policy: str = "renormalize",
) -> Tensor:  # [N] bool
    """Rows that enter the loss: all but the failed ones ("renormalize"), or all rows of groups with no
    failed row ("drop_group")."""
    if policy == "renormalize":
        return ~failed
    if policy == "drop_group":
        clean = ~failed.view(-1, group_size).any(dim=1, keepdim=True)  # [B, 1]
        return clean.expand(-1, group_size).reshape(-1)
    raise ValueError(f"policy must be one of {VERIFIER_FAILURE_POLICIES}, got {policy!r}")


def informative_groups(
    scores: Tensor,  # [N] float: the signal DAPO filters on (accuracy reward by default)
    group_size: int,
    valid: Tensor | None = None,  # [N] bool: rows that count; None: all
) -> Tensor:  # [B] bool
    """DAPO dynamic sampling: a group whose scores are all equal carries no gradient; keep the others.
    With `valid`, only valid rows are compared (a group needs two of them)."""
    grouped = scores.view(-1, group_size)  # [B, G]
    if valid is None:
        return (grouped.max(dim=1).values - grouped.min(dim=1).values) > 0
    v = valid.view(-1, group_size)  # [B, G]
    hi = torch.where(v, grouped, torch.full_like(grouped, -torch.inf)).max(dim=1).values  # [B]
    lo = torch.where(v, grouped, torch.full_like(grouped, torch.inf)).min(dim=1).values  # [B]
    return (v.sum(dim=1) >= 2) & (hi - lo > 0)
