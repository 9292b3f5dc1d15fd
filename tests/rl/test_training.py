"""The GRPO step's pure pieces (rl/training.py): which rows carry a verdict, what failures are counted, and the
update batch's advantages and loss mask (padding groups and overlong rows carry nothing)."""

from __future__ import annotations

import pytest
import torch

from lit_triune.rl import training
from lit_triune.rl.counters import RunCounters
from lit_triune.rl.rollout_step import ScoredRollout

G = 2


def _scored(results: list[dict], truncated: list[bool] | None = None) -> ScoredRollout:
    n = len(results)
    b = n // G
    return ScoredRollout(group_size=G, prompts=[f"p{i}" for i in range(b)], images=[None] * b,
                         image_sizes=[(1, 1)] * b, reward_models=[{}] * b, data_sources=["s"] * b,
                         completion_ids=[[5, 6, 7]] * n, texts=[""] * n,
                         truncated=torch.tensor(truncated or [False] * n), results=results)


RESULTS = [{"reward": 1.0, "failure": None}, {"reward": 0.0, "failure": "timeout"},  # group 0: one timed out
           {"reward": 1.0, "failure": None}, {"reward": 0.0, "failure": "parse"}]  # group 1: a parse failure counts


@pytest.mark.parametrize(("policy", "valid", "masked", "dropped"), [
    ("renormalize", [True, False, True, True], 1, 0),
    ("drop_group", [False, False, True, True], 2, 1),
])
def test_infrastructure_failures_leave_the_loss_and_are_counted(policy, valid, masked, dropped) -> None:
    scored = _scored(RESULTS)
    rows = training.verdict_rows(scored, policy)
    assert rows.tolist() == valid  # a parse failure is the model's: it stays a zero reward
    counters = RunCounters()
    training.count_verifier_failures(scored, rows, counters)
    assert counters.get("verifier_failures/infra_failed_samples") == 1
    assert counters.get("verifier_failures/masked_samples") == masked
    assert counters.get("verifier_failures/groups_dropped") == dropped


class _Config:
    image_token_id = None


class _Policy:
    config = _Config()


class _Tokenizer:
    pad_token_id = 0


def _encoded(b: int):
    from lit_triune.models.policy_inputs import EncodedPrompts

    ids = [[1, 2] for _ in range(b)]
    return EncodedPrompts(input_ids=ids, pixel_values=None, image_grid_thw=None, patches_per_prompt=[0] * b)


def test_update_batch_masks_padding_groups_invalid_and_overlong_rows() -> None:
    results = [{"reward": r, "failure": None} for r in (1.0, 0.0, 1.0, 0.0)]
    scored = _scored(results, truncated=[False, True, False, False])
    valid = torch.tensor([True, True, True, True])
    batch = training.update_batch(scored, _encoded(2), policy=_Policy(), tokenizer=_Tokenizer(),
                                  device=torch.device("cpu"), valid=valid, features=None, scale_rewards="group",
                                  overlong_filter=True, padding_groups=1)
    assert batch.real_rows == 2
    assert batch.advantages[2:].tolist() == [0.0, 0.0]  # the padding group carries no advantage
    assert batch.advantages[0] > 0 > batch.advantages[1]
    rows_in_loss = batch.loss_mask.any(dim=1).tolist()
    assert rows_in_loss == [True, False, False, False]  # row 1 overlong, rows 2-3 padding
