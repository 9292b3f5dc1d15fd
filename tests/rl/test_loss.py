"""GRPO/DAPO loss: hand-computed values, TRL's formulas on the same tensors, monotonicity, the loss classes."""

import math

import pytest
import torch
from torch.testing import assert_close

from lit_triune.rl.advantages import group_advantages, informative_groups
from lit_triune.rl.loss import DAPOLoss, DrGRPOLoss, GRPOLoss, policy_loss


def _trl_reference(logps, old, adv, mask, loss_type, eps_low, eps_high, max_len=None, beta=0.0, ref=None):
    """TRL 1.16 GRPOTrainer._compute_loss, restated for one process and no gradient accumulation."""
    coef_1 = torch.exp(logps - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    a = adv.unsqueeze(1)
    per_token_loss = -torch.min(coef_1 * a, coef_2 * a)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * (torch.exp(ref - logps) - (ref - logps) - 1)
    m = mask.float()
    if loss_type == "grpo":
        return ((per_token_loss * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dr_grpo":
        return (per_token_loss * m).sum() / (per_token_loss.size(0) * max_len)
    if loss_type == "dapo":  # num_items_in_batch = valid tokens of the generation batch
        return (per_token_loss * m).sum() / m.sum().clamp(min=1.0)
    raise ValueError(loss_type)


def _random_case(seed, n=16, t=12):
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(n, t, generator=g) * 3
    old = logps + (torch.rand(n, t, generator=g) - 0.5) * 0.8  # ratios well outside [0.8, 1.28]
    adv = torch.randn(n, generator=g)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = torch.arange(t)[None, :] < lengths[:, None]
    return logps, old, adv, mask


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("ours", "trl"), [("token", "dapo"), ("sequence", "grpo"), ("fixed", "dr_grpo")]
)
def test_equals_trl_loss(seed, ours, trl):
    logps, old, adv, mask = _random_case(seed)
    loss, _ = policy_loss(logps, old, adv, mask, clip_low=0.2, clip_high=0.28, aggregation=ours,
                          max_completion_length=12)
    ref = _trl_reference(logps, old, adv, mask, trl, 0.2, 0.28, max_len=12)
    assert_close(loss, ref, atol=1e-6, rtol=0)


def test_equals_trl_with_kl_and_same_gradient():
    logps, old, adv, mask = _random_case(7)
    ref_lp = logps + 0.1
    a = logps.clone().requires_grad_(True)
    b = logps.clone().requires_grad_(True)
    ours, diag = policy_loss(a, old, adv, mask, kl_coef=0.04, ref_logprobs=ref_lp)
    theirs = _trl_reference(b, old, adv, mask, "dapo", 0.2, 0.28, beta=0.04, ref=ref_lp)
    assert_close(ours, theirs, atol=1e-6, rtol=0)
    ours.backward()
    theirs.backward()
    assert_close(a.grad, b.grad, atol=1e-7, rtol=0)
    assert diag["kl_ref"] > 0


def test_hand_computed_token_mean():
    # Two sequences, on-policy except one token. Row 0: A=+1, tokens ratio [1, e^0.5≈1.6487] -> clipped
    # at 1.28 for A>0: losses [-1, -1.28]. Row 1: A=-1, ratio [e^-0.5≈0.6065] (one valid token) ->
    # -min(-0.6065, -0.8) = 0.8. Token mean over 3 valid tokens: (-1 - 1.28 + 0.8) / 3 = -0.49333.
    logps = torch.tensor([[0.0, 0.5], [-0.5, 0.0]])
    old = torch.zeros(2, 2)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[True, True], [True, False]])
    loss, diag = policy_loss(logps, old, adv, mask)
    assert_close(loss, torch.tensor((-1 - 1.28 + 0.8) / 3))
    assert_close(diag["clip_ratio/high"], torch.tensor(1 / 3))
    assert_close(diag["clip_ratio/low"], torch.tensor(1 / 3))


def test_minibatch_token_normaliser_adds_up_to_full_batch():
    logps, old, adv, mask = _random_case(3)
    full, _ = policy_loss(logps, old, adv, mask)
    total = mask.sum()
    parts = [policy_loss(logps[i : i + 4], old[i : i + 4], adv[i : i + 4], mask[i : i + 4], num_tokens=total)[0]
             for i in range(0, 16, 4)]
    assert_close(sum(parts), full, atol=1e-6, rtol=0)


def test_loss_decreases_as_good_tokens_get_likelier():
    # With A > 0, raising log π of the sampled token lowers the loss until the clip at 1 + ε_high.
    old = torch.zeros(1, 1)
    values = [policy_loss(torch.tensor([[d]]), old, torch.tensor([1.0]), torch.ones(1, 1, dtype=torch.bool))[0].item()
              for d in (-0.3, -0.1, 0.0, 0.1, 0.2, math.log(1.28), 0.4)]
    assert all(a > b for a, b in zip(values[:5], values[1:6], strict=True))
    assert values[-1] == pytest.approx(values[-2])  # clipped: no further gain


def test_group_advantages_match_trl():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    adv = group_advantages(rewards, 4)
    grouped = rewards.view(2, 4)
    std = grouped.std(dim=1).repeat_interleave(4)  # Bessel-corrected, as TRL's nanstd
    expected = (rewards - grouped.mean(1).repeat_interleave(4)) / (std + 1e-4)
    assert_close(adv, expected)
    assert adv[4:].abs().max() == 0
    assert_close(group_advantages(rewards, 4, scale="none")[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]))
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(rewards, 3)


def test_informative_groups():
    acc = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    assert informative_groups(acc, 4).tolist() == [False, True]


def test_dual_clip_bounds_negative_advantage_tokens():
    # A = -1, ratio e^2 ≈ 7.39: the plain surrogate gives -min(-7.39, -1.28) = 7.39; dual clip c=3 caps it at 3.
    logps, old = torch.tensor([[2.0, 0.0]]), torch.zeros(1, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    plain, _ = policy_loss(logps, old, torch.tensor([-1.0]), mask)
    capped, _ = policy_loss(logps, old, torch.tensor([-1.0]), mask, dual_clip=3.0)
    assert_close(plain, torch.tensor((math.exp(2.0) + 1.0) / 2))
    assert_close(capped, torch.tensor((3.0 + 1.0) / 2))
    # Positive advantages are untouched.
    pos, _ = policy_loss(logps, old, torch.tensor([1.0]), mask, dual_clip=3.0)
    assert_close(pos, policy_loss(logps, old, torch.tensor([1.0]), mask)[0])
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        policy_loss(logps, old, torch.tensor([1.0]), mask, dual_clip=0.5)


@pytest.mark.parametrize(("cls", "aggregation"), [(DAPOLoss, "token"), (GRPOLoss, "sequence"), (DrGRPOLoss, "fixed")])
def test_loss_classes_are_policy_loss_with_their_aggregation(cls, aggregation):
    logps, old, adv, mask = _random_case(11)
    ref_lp = logps + 0.05
    loss_fn = cls(clip_low=0.1, clip_high=0.3, dual_clip=2.5, kl_coef=0.02)
    ours, diag = loss_fn(logps, old, adv, mask, max_completion_length=12, num_tokens=40, ref_logprobs=ref_lp)
    direct, direct_diag = policy_loss(logps, old, adv, mask, clip_low=0.1, clip_high=0.3, aggregation=aggregation,
                                      max_completion_length=12, num_tokens=40, ref_logprobs=ref_lp, kl_coef=0.02,
                                      dual_clip=2.5)
    assert torch.equal(ours, direct) and diag.keys() == direct_diag.keys()


def test_default_loss_is_the_papers():
    loss_fn = DAPOLoss()
    assert (loss_fn.aggregation, loss_fn.clip_low, loss_fn.clip_high, loss_fn.dual_clip, loss_fn.kl_coef) == (
        "token", 0.2, 0.28, None, 0.0)


@pytest.mark.parametrize(("kwargs", "match"), [({"dual_clip": 1.0}, "dual_clip must be > 1"),
                                               ({"kl_coef": -0.1}, "kl_coef must be >= 0"),
                                               ({"clip_low": 1.0}, "clip_low < 1"),
                                               ({"clip_high": -0.1}, "clip_high >= 0"),
                                               ({"behaviour_weight_cap": 0.5}, "behaviour_weight_cap must be >= 1")])
def test_loss_settings_are_checked_when_built(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DAPOLoss(**kwargs)


def test_loss_builds_from_a_class_path_and_a_scheduled_value_can_reach_it():
    from jsonargparse import ArgumentParser

    from lit_triune.rl.loss import ClippedPolicyLoss

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--loss", type=ClippedPolicyLoss)
    cfg = parser.parse_object({"loss": {"class_path": "lit_triune.rl.loss.GRPOLoss", "init_args": {"clip_high": 0.4}}})
    loss_fn = parser.instantiate_classes(cfg).loss
    assert isinstance(loss_fn, GRPOLoss) and loss_fn.clip_high == 0.4 and loss_fn.clip_low == 0.2
    # read at every call: changing the attribute (what ScheduledValue(attr="loss.clip_high") does) takes effect
    logps, old, adv, mask = _random_case(2)
    before, _ = loss_fn(logps, old, adv, mask)
    loss_fn.clip_high = 0.1
    after, _ = loss_fn(logps, old, adv, mask)
    expected, _ = policy_loss(logps, old, adv, mask, clip_high=0.1, aggregation="sequence")
    assert torch.equal(after, expected) and not torch.equal(before, after)


def test_decoupled_objective_weights_each_token_by_the_truncated_behaviour_ratio():
    """Hand-computed, A = 1 on two tokens: π_old / π_behaviour = e^0.5 (kept) and e^2 (truncated at 2).
    The clipped surrogate is taken against π_old (ratio e^0.1 inside the clip range), then weighted."""
    old = torch.tensor([[-1.0, -1.0]])
    logps = old + 0.1
    behaviour = torch.tensor([[-1.5, -3.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    loss, diag = policy_loss(logps, old, torch.tensor([1.0]), mask, behaviour_logprobs=behaviour,
                             behaviour_weight_cap=2.0)
    assert_close(loss, torch.tensor(-math.exp(0.1) * (math.exp(0.5) + 2.0) / 2))
    assert_close(diag["behaviour_ratio_mean"], torch.tensor((math.exp(0.5) + math.exp(2.0)) / 2))
    assert_close(diag["behaviour_capped"], torch.tensor(0.5))
    assert_close(diag["approx_kl_behaviour"], torch.tensor(-(0.5 + 2.0) / 2))
    assert_close(diag["ratio_mean"], torch.tensor(math.exp(0.1)))


def test_decoupled_objective_with_the_behaviour_policy_equal_to_old_is_the_plain_loss():
    logps, old, adv, mask = _random_case(3)
    logps.requires_grad_(True)
    plain, _ = policy_loss(logps, old, adv, mask)
    (g_plain,) = torch.autograd.grad(plain, logps)
    decoupled, diag = policy_loss(logps, old, adv, mask, behaviour_logprobs=old.clone(), behaviour_weight_cap=2.0)
    (g_decoupled,) = torch.autograd.grad(decoupled, logps)
    assert_close(decoupled, plain)
    assert_close(g_decoupled, g_plain)
    assert diag["behaviour_capped"] == 0.0


def test_decoupled_objective_ignores_padding_of_the_behaviour_log_probs():
    """Padded positions of the engine's log-probs hold 0 while the recomputed ones can be anything: no inf,
    no nan, and they do not count."""
    logps, old, adv, mask = _random_case(4)
    behaviour = torch.where(mask, old, torch.full_like(old, -1e4))  # absurd values where mask is False
    loss, diag = policy_loss(logps, old, adv, mask, behaviour_logprobs=behaviour, behaviour_weight_cap=None)
    plain, _ = policy_loss(logps, old, adv, mask)
    assert_close(loss, plain)
    assert all(torch.isfinite(v) for v in diag.values())
