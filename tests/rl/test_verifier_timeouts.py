"""Verifier failures stay out of the learning signal: a completion whose scoring timed out (or crashed) is
masked out of the loss, its group's advantages computed over the rest, and counted; a parse failure
remains a zero reward."""

from __future__ import annotations

import functools

import pytest
import torch
from rl_fit import fit, tiny_data, tiny_module
from torch.testing import assert_close

from lit_triune.rewards import VerifierPool
from lit_triune.rl import training
from lit_triune.rl.advantages import group_advantages, informative_groups, valid_rows
from lit_triune.rl.module import TriuneModule


def test_masked_advantages_renormalise_over_the_scored_rows():
    rewards = torch.tensor([1.0, 0.0, 0.0, 5.0, 1.0, 1.0, 0.0, 9.0])  # 2 groups of 4; rows 3 and 7 failed
    valid = torch.tensor([True, True, True, False, True, True, True, False])
    adv = group_advantages(rewards, 4, "group", eps=0.0, valid=valid)
    # group 1 scored rows 1, 0, 0: mean 1/3, centred 2/3, -1/3, -1/3; std (Bessel) sqrt((4/9+1/9+1/9)/2) = sqrt(1/3)
    s = (1 / 3) ** 0.5
    expected = torch.tensor([2 / 3 / s, -1 / 3 / s, -1 / 3 / s, 0.0, 1 / 3 / s, 1 / 3 / s, -2 / 3 / s, 0.0])
    assert_close(adv, expected)
    # the same as the unmasked computation on the scored rows alone
    assert_close(adv[:3], group_advantages(rewards[:3], 3, "group", eps=0.0))
    # all valid: exactly the original path
    assert torch.equal(group_advantages(rewards, 4, valid=torch.ones(8, dtype=torch.bool)), group_advantages(rewards, 4))


def test_group_with_one_scored_row_has_no_signal_and_drop_group_policy():
    failed = torch.tensor([False, True, True, True, False, True, False, False])
    assert valid_rows(failed, 4, "renormalize").tolist() == [True, False, False, False, True, False, True, True]
    assert valid_rows(failed, 4, "drop_group").tolist() == [False] * 8
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    adv = group_advantages(rewards, 4, valid=valid_rows(failed, 4))
    assert adv[:4].abs().sum() == 0  # one scored row: nothing to compare with
    assert informative_groups(rewards, 4, valid_rows(failed, 4)).tolist() == [False, True]
    with pytest.raises(ValueError, match="policy"):
        valid_rows(failed, 4, "ignore")


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="verifier_failures"):
        tiny_module(verifier_failures="zero")


@pytest.mark.slow
def test_timed_out_samples_carry_no_advantage_are_counted_and_the_rest_trains(tmp_path, monkeypatch):
    # Real pool workers whose counting verifier sleeps past the budget on a third of the completions.
    monkeypatch.setattr("lit_triune.rewards.VerifierPool",
                        functools.partial(VerifierPool, imports=("timeout_verifier",)))
    seen = []
    real_update = training.run_update

    def spy(**kwargs):
        stats = real_update(**kwargs)
        seen.append((kwargs["advantages"].clone(), kwargs["loss_mask"].clone(), stats))
        return stats

    monkeypatch.setattr(training, "run_update", spy)
    rollouts = []
    real_step = TriuneModule.grpo_step

    def step(self, batch):
        out = real_step(self, batch)
        rollouts.append(out["rollout"])
        return out

    monkeypatch.setattr(TriuneModule, "grpo_step", step)
    # 3 steps x 2 prompts x 6 completions: enough groups that some keep >= 2 scored rows with different
    # rewards whatever the images (with 2 steps of groups of 4, generator v5's images left none)
    module = tiny_module(reward_workers=1, reward_timeout_s=1.0, group_size=6, max_new_tokens=6)
    fit(module, tiny_data(tmp_path / "cache", synthetic={"counting": 16}), tmp_path, max_steps=3)
    from timeout_rule import times_out  # not timeout_verifier: that would replace `counting` here too

    total_failed = 0
    for (adv, mask, stats), records in zip(seen, rollouts, strict=True):
        failed = torch.tensor([times_out(r) for r in records["response"]])
        assert records["verifier_failure"][failed].all()
        assert (adv[failed] == 0).all()  # no advantage
        assert not mask[failed].any()  # no token in the loss
        assert mask[~failed].any()  # the others train
        assert stats["steps"] == 1.0 and stats["skipped_nonfinite"] == 0.0
        total_failed += int(failed.sum())
    assert total_failed > 0, "no completion timed out: the test proves nothing"
    assert any((adv != 0).any() for adv, _, _ in seen)  # the scored rows carried signal
    assert module.counters["verifier_failures/infra_failed_samples"] == total_failed
    assert module.counters["verifier_failures/masked_samples"] == total_failed
