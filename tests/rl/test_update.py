"""run_update on the tiny Qwen2.5-VL: minibatches, the off-policy old-log-prob path, micro-batch
gradient accumulation and the non-finite guard, with a `step` that records instead of stepping
(or steps a plain SGD optimizer)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from PIL import Image
from torch.testing import assert_close

import lit_triune.rl.update as update_mod
from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
from lit_triune.rl.logprobs import completion_logprobs
from lit_triune.rl.loss import DAPOLoss, GRPOLoss
from lit_triune.rl.update import UpdateSettings, run_update

LOSSES = {"token": DAPOLoss, "sequence": GRPOLoss}


class SpyLoss(DAPOLoss):
    """The default loss, with a look at every call's arguments first."""

    def __init__(self, look) -> None:
        super().__init__()
        self.look = look

    def __call__(self, lp, old, adv, mask, **kw):
        self.look(lp, old, adv, mask, **kw)
        return super().__call__(lp, old, adv, mask, **kw)

N_PROMPTS, G = 2, 4


@pytest.fixture(scope="module")
def model(tiny_model_path):
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    m = AutoModelForImageTextToText.from_pretrained(tiny_model_path, dtype=torch.float32)
    return m.train()


@pytest.fixture(scope="module")
def inputs(model, tiny_processor):
    """2 image prompts x 4 completions of different lengths (1..9 tokens)."""
    content = [{"type": "image"}, {"type": "text", "text": "How many squares?"}]
    prompt = tiny_processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                tokenize=False)
    images = [Image.new("RGB", (112, 112), (200, 40, 40)), Image.new("RGB", (84, 140), (40, 40, 200))]
    enc = encode_prompts(tiny_processor, [prompt, prompt], images)
    gen = torch.Generator().manual_seed(1)
    vocab = [i for i in range(200, 400)]
    lengths = [1, 5, 9, 3, 7, 2, 9, 4]
    completions = [[vocab[int(j)] for j in torch.randint(len(vocab), (n,), generator=gen)] for n in lengths]
    prompt_index = torch.arange(N_PROMPTS).repeat_interleave(G)
    return build_policy_inputs(model, enc, completions, prompt_index, tiny_processor.tokenizer.pad_token_id,
                               model.config.image_token_id)


ADVANTAGES = torch.tensor([1.0, -0.5, 0.25, -0.75, -1.0, 0.5, 1.5, -1.25])


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _run(model, inputs, settings, *, advantages=ADVANTAGES, step=None, backward=None):
    calls: list[dict] = []

    def record_step(finite: bool) -> tuple[bool, float]:
        calls.append({"finite": finite, "grads": _grads(model)})
        model.zero_grad(set_to_none=True)
        return finite, 1.0 if finite else math.nan

    stats = run_update(model=model, inputs=inputs, advantages=advantages,
                       loss_mask=inputs.completion_mask.clone(), settings=settings, features=None,
                       backward=backward or (lambda loss: loss.backward()), step=step or record_step,
                       global_token_count=lambda c: c.detach())
    return stats, calls


@pytest.mark.parametrize("shared_prefix", [True, False])
@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_micro_batch_gradient_equals_full_batch_gradient(model, inputs, aggregation, shared_prefix):
    model.zero_grad(set_to_none=True)
    full_stats, (full,) = _run(model, inputs, UpdateSettings(loss=LOSSES[aggregation](), shared_prefix=shared_prefix))
    micro_stats, (micro,) = _run(model, inputs, UpdateSettings(loss=LOSSES[aggregation](), micro_batch_size=3,
                                                               shared_prefix=shared_prefix))
    assert full["finite"] and micro["finite"]
    assert full["grads"].keys() == micro["grads"].keys() and len(full["grads"]) > 10
    for name, g in full["grads"].items():
        assert_close(micro["grads"][name], g, atol=1e-6, rtol=1e-5, msg=name)
    assert sum(g.abs().sum() for g in full["grads"].values()) > 0
    assert micro_stats["loss"] == pytest.approx(full_stats["loss"], abs=1e-6)
    for key in ("ratio_mean", "clip_ratio/low", "clip_ratio/high", "approx_kl_old"):  # token means, not sums
        assert micro_stats[key] == pytest.approx(full_stats[key], abs=1e-6), key
    assert micro_stats["ratio_mean"] == pytest.approx(1.0)


def test_minibatches_split_rows_and_token_counts_add_up(model, inputs, monkeypatch):
    """updates_per_rollout=k: k optimizer steps over disjoint minibatches covering every row, each
    normalised by its own token count (as DAPO's per-minibatch mean)."""
    seen: list[tuple[list[int], float]] = []

    def spy(lp, old, adv, mask, **kw):
        seen.append((adv.tolist(), float(kw["num_tokens"])))

    stats, calls = _run(model, inputs, UpdateSettings(loss=SpyLoss(spy), updates_per_rollout=2))
    assert len(calls) == 2 and stats["steps"] == 2.0 and stats["skipped_nonfinite"] == 0.0
    assert [a for a, _ in seen] == [ADVANTAGES[:4].tolist(), ADVANTAGES[4:].tolist()]
    mask = inputs.completion_mask
    assert [n for _, n in seen] == [float(mask[:4].sum()), float(mask[4:].sum())]


def test_off_policy_old_logprobs_are_the_pre_update_policy(model, inputs, monkeypatch):
    """With k > 1 minibatches π_old is computed once, before the first step: the first minibatch has
    ratio 1, later ones compare the updated policy with the policy that generated the rollout."""
    policy = copy.deepcopy(model)
    before = copy.deepcopy(model)
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def spy(lp, old, adv, mask, **kw):
        seen.append((lp.detach().clone(), old.detach().clone(), mask.clone()))

    def sgd_step(finite: bool) -> tuple[bool, float]:
        opt.step()
        opt.zero_grad(set_to_none=True)
        return True, 0.0

    stats, _ = _run(policy, inputs, UpdateSettings(loss=SpyLoss(spy), updates_per_rollout=2), step=sgd_step)
    assert stats["steps"] == 2.0
    with torch.no_grad():
        reference = completion_logprobs(before, inputs)  # [N, T] the rollout policy
    (lp1, old1, m1), (lp2, old2, m2) = seen
    assert_close(old1, reference[:4, : old1.shape[1]], atol=1e-5, rtol=0)
    assert_close(old2, reference[4:, : old2.shape[1]], atol=1e-5, rtol=0)
    assert_close(lp1 * m1, old1 * m1, atol=1e-5, rtol=0)  # first minibatch: still the rollout policy
    assert (lp2 - old2)[m2].abs().max() > 1e-3  # second: the policy moved, the ratio is not 1
    assert stats["approx_kl_old"] != 0.0


def test_on_policy_uses_detached_current_logprobs(model, inputs, monkeypatch):
    """updates_per_rollout=1: no separate π_old pass; old = current log-probs, detached (ratio exactly 1)."""
    forwards = []
    real_lp = update_mod.completion_logprobs

    def count_lp(*a, **kw):
        forwards.append(1)
        return real_lp(*a, **kw)

    def check(lp, old, adv, mask, **kw):
        assert lp.requires_grad and not old.requires_grad
        assert torch.equal(lp.detach(), old)

    monkeypatch.setattr(update_mod, "completion_logprobs", count_lp)
    stats, _ = _run(model, inputs, UpdateSettings(loss=SpyLoss(check), micro_batch_size=4))
    assert len(forwards) == 2  # the two micro-batches, nothing else
    assert stats["ratio_mean"] == pytest.approx(1.0) and stats["clip_ratio/high"] == 0.0


def test_non_finite_loss_skips_the_step_but_runs_every_backward(model, inputs):
    """A NaN advantage in the first micro-batch: the step is reported non-finite, and the other
    micro-batches still run their backward (under DDP each backward is a collective)."""
    adv = ADVANTAGES.clone()
    adv[1] = math.nan
    backwards: list[float] = []

    def backward(loss):
        backwards.append(float(loss))
        loss.backward()

    stats, calls = _run(model, inputs, UpdateSettings(micro_batch_size=4), advantages=adv, backward=backward)
    assert [c["finite"] for c in calls] == [False]
    assert len(backwards) == 2 and math.isnan(backwards[0]) and math.isfinite(backwards[1])
    assert stats["skipped_nonfinite"] == 1.0 and stats["steps"] == 0.0 and stats["grad_norm"] == 0.0


def test_gradient_checkpointing_trains_the_same_weights_through_the_shared_prefix(tmp_path, monkeypatch):
    """`gradient_checkpointing=True` (HF, non-reentrant) recomputes activations, nothing else: three GRPO
    steps (trainable ViT, one warm-start step) end in the same weights as without it, and the update keeps
    the shared-prefix path (no fallback to full rows)."""
    from rl_fit import fit, tiny_data, tiny_module

    import lit_triune.rl.logprobs as logprobs_mod

    full_rows = {"n": 0}
    original = logprobs_mod._forward_hidden

    def counting(*args, **kwargs):
        full_rows["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(logprobs_mod, "_forward_hidden", counting)
    weights = {}
    for ckpt in (False, True):
        module = tiny_module(freeze="none", gradient_checkpointing=ckpt, warm_start_steps=1)
        fit(module, tiny_data(tmp_path / "data"), tmp_path / str(ckpt), max_steps=3)
        assert module.policy.is_gradient_checkpointing == ckpt
        weights[ckpt] = {n: p.detach().clone() for n, p in module.policy.named_parameters()}
    assert full_rows["n"] == 0
    for name, w in weights[False].items():
        assert torch.allclose(w, weights[True][name], atol=1e-6), name


def test_micro_batches_take_whole_groups_ordered_by_their_longest_completion():
    from types import SimpleNamespace

    lengths = torch.tensor([3, 1, 40, 2, 12, 12, 5, 6, 9, 100, 1, 1])  # 4 prompts x 3 rows
    mask = torch.arange(100)[None, :] < lengths[:, None]  # [12, 100]
    fake = SimpleNamespace(completion_mask=mask, prompt_index=torch.arange(4).repeat_interleave(3))
    order = update_mod.by_group_length(torch.arange(12), fake)
    # longest per prompt: 40, 12, 9, 100 -> prompts 2, 1, 0, 3; rows of a prompt stay together, in order
    assert order.tolist() == [6, 7, 8, 3, 4, 5, 0, 1, 2, 9, 10, 11]
    sub = update_mod.by_group_length(torch.tensor([9, 10, 0, 2]), fake)  # a minibatch's own rows only
    assert sub.tolist() == [0, 2, 9, 10]


def test_micro_batches_are_padded_to_their_own_groups(model, inputs, monkeypatch):
    """With micro_batch_size = one group, each forward sees exactly one prompt's rows."""
    seen: list[list[int]] = []
    real = update_mod.completion_logprobs

    def spy(m, sub, **kw):
        seen.append(sub.prompt_index.tolist())
        return real(m, sub, **kw)

    monkeypatch.setattr(update_mod, "completion_logprobs", spy)
    model.zero_grad(set_to_none=True)
    _run(model, inputs, UpdateSettings(micro_batch_size=G))
    assert sorted(seen) == [[0] * G, [1] * G]


def test_behaviour_clip_takes_the_ratio_against_the_sampling_policy(model, inputs):
    """Asynchronous rollouts, "behaviour_clip": π_old is the sampling policy the engine reported, not a
    recompute. Behaviour log-probs 0.1 above the policy's give a ratio of exp(-0.1) on every token."""
    with torch.no_grad():
        lp = completion_logprobs(model.eval(), inputs)  # [N, T]
    model.train()
    settings = UpdateSettings(loss=DAPOLoss(clip_low=0.5, clip_high=0.5), micro_batch_size=4,
                              behaviour_objective="behaviour_clip")
    stats = run_update(model=model, inputs=inputs, advantages=ADVANTAGES, loss_mask=inputs.completion_mask,
                       settings=settings, features=None, backward=lambda loss: None, step=lambda finite: (True, 0.0),
                       global_token_count=lambda n: n, behaviour_logprobs=lp + 0.1)
    assert stats["ratio_mean"] == pytest.approx(math.exp(-0.1), abs=1e-5)


@pytest.mark.parametrize(("shift", "weight", "capped"), [(0.1, math.exp(-0.1), 0.0), (-2.0, 2.0, 1.0)])
def test_decoupled_objective_weights_the_on_policy_gradient_by_the_behaviour_ratio(model, inputs, shift, weight,
                                                                                   capped):
    """Asynchronous rollouts, "decoupled" (the default): the trust region is around the policy before the
    update (ratio exactly 1 with one update, no extra forward), and every token's gradient is the on-policy
    one times π_old / π_behaviour, truncated at the loss's cap (2): behaviour log-probs `shift` above the
    policy's scale the whole gradient by exp(-shift), or by 2 when that is above the cap."""
    with torch.no_grad():
        lp = completion_logprobs(model.eval(), inputs)  # [N, T]
    model.train()
    settings = UpdateSettings(loss=DAPOLoss(behaviour_weight_cap=2.0), micro_batch_size=4)
    model.zero_grad(set_to_none=True)
    _, (plain,) = _run(model, inputs, settings)
    stats = run_update(model=model, inputs=inputs, advantages=ADVANTAGES, loss_mask=inputs.completion_mask.clone(),
                       settings=settings, features=None, backward=lambda loss: loss.backward(),
                       step=lambda finite: (True, 0.0), global_token_count=lambda c: c.detach(),
                       behaviour_logprobs=lp + shift)
    weighted = _grads(model)
    model.zero_grad(set_to_none=True)
    assert stats["ratio_mean"] == pytest.approx(1.0) and stats["clip_ratio/high"] == 0.0
    assert stats["behaviour_ratio_mean"] == pytest.approx(math.exp(-shift), rel=1e-4)
    assert stats["behaviour_capped"] == capped
    assert plain["grads"].keys() == weighted.keys()
    for name, g in plain["grads"].items():
        assert_close(weighted[name], g * weight, atol=1e-6, rtol=1e-4, msg=name)


def test_behaviour_objective_is_checked():
    with pytest.raises(ValueError, match="behaviour_objective must be one of"):
        UpdateSettings(behaviour_objective="clip")
