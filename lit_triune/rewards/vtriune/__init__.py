"""Compatibility mode: the released V-Triune reward server's behaviour (MiniMax-AI/One-RL-to-See-Them-All,
MIT; credited in NOTICE), re-implemented in our own structure."""

from lit_triune.rewards.vtriune.server import VERIFIERS, score_vtriune

__all__ = ["VERIFIERS", "score_vtriune"]
