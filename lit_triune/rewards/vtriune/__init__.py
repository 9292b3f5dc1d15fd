"""Compatibility mode reproducing the released V-Triune reward server (MiniMax-AI/One-RL-to-See-Them-All)."""

from lit_triune.rewards.vtriune.server import VERIFIERS, score_vtriune

__all__ = ["VERIFIERS", "score_vtriune"]
