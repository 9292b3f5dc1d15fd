"""Rewards: per-sample verifiers chosen by `reward_model["verifier"]`, format reward, parallel pool.

Public entry points: `score`, `score_batch`, `VerifierPool`; extension: `register_verifier`,
`get_verifier`, `available_verifiers`, `validate_reward_model`. See docs/rewards.md.
"""

from lit_triune.rewards.coco import coco_map
from lit_triune.rewards.format import format_reward, tags_format
from lit_triune.rewards.matching import box_iou
from lit_triune.rewards.pool import VerifierPool
from lit_triune.rewards.registry import (
    Verifier,
    available_verifiers,
    get_verifier,
    register_verifier,
    validate_reward_model,
)
from lit_triune.rewards.result import FAILURES, STANDARD_SUBSCORES, Context, Verdict
from lit_triune.rewards.scoring import score, score_batch

__all__ = [
    "FAILURES",
    "STANDARD_SUBSCORES",
    "Context",
    "Verdict",
    "Verifier",
    "VerifierPool",
    "available_verifiers",
    "box_iou",
    "coco_map",
    "format_reward",
    "get_verifier",
    "register_verifier",
    "score",
    "score_batch",
    "tags_format",
    "validate_reward_model",
]
