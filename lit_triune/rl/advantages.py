"""Group-relative advantages (GRPO, Shao et al. 2024, arXiv:2402.03300) and DAPO group filtering."""

from __future__ import annotations

import torch
from torch import Tensor


def group_advantages(
    rewards: Tensor,  # [N] float, N = B*G, prompt-major
    group_size: int,
    scale: str = "group",  # "group": divide by the group's std; "batch": by the batch std; "none"
    eps: float = 1e-4,
) -> Tensor:  # [N]
    """(r - mean_group) / (std + eps), std with Bessel's correction — TRL's `scale_rewards` semantics.

    The paper (V-Triune) follows DAPO; whether to scale by std is a recipe choice (Dr. GRPO argues
    against it), so it is an option. A group of identical rewards gets advantage 0 either way.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)  # [B, G]
    centred = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)  # [N]
    if scale == "none":
        return centred
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True).expand_as(grouped).reshape(-1)  # [N]
    elif scale == "batch":
        std = rewards.std().expand_as(rewards)  # [N]
    else:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    return torch.nan_to_num(centred / (std + eps), nan=0.0)


def informative_groups(
    scores: Tensor,  # [N] float: the signal DAPO filters on (accuracy reward by default)
    group_size: int,
) -> Tensor:  # [B] bool
    """DAPO dynamic sampling: a group whose scores are all equal carries no gradient; keep the others."""
    grouped = scores.view(-1, group_size)  # [B, G]
    return (grouped.max(dim=1).values - grouped.min(dim=1).values) > 0
