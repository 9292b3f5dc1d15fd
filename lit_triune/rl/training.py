"""The pieces of one GRPO/DAPO step that TriuneModule.grpo_step puts together: which rows carry a verdict,
the update's inputs (advantages and loss mask included), and the figures logged per step.

rollout (rl/rollout_step.py) -> verdict rows -> [dynamic sampling (rl/dynamic_sampling.py)] -> update batch
-> run_update (rl/update.py) -> logged figures
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from lit_triune.models.policy_inputs import EncodedPrompts, PolicyInputs, build_policy_inputs
from lit_triune.rl.advantages import INFRA_FAILURES, group_advantages, valid_rows
from lit_triune.rl.counters import RunCounters
from lit_triune.rl.distributed import gather_objects
from lit_triune.rl.rollout_step import ScoredRollout
from lit_triune.rl.update import UpdateSettings, run_update


def verdict_rows(scored: ScoredRollout, policy: str) -> Tensor:  # [N] bool
    """Rows whose reward is the verifier's judgement, not an infrastructure failure (timeout, crash), under the
    `verifier_failures` policy ("renormalize": only the failed rows drop; "drop_group": their whole group)."""
    failed = torch.tensor([r.get("failure") in INFRA_FAILURES for r in scored.results], dtype=torch.bool)
    return valid_rows(failed, scored.group_size, policy)


def count_verifier_failures(scored: ScoredRollout, valid: Tensor, counters: RunCounters) -> None:
    """Counts the infrastructure failures of a rollout and the rows and groups they take out of the loss."""
    failed = sum(r.get("failure") in INFRA_FAILURES for r in scored.results)
    if failed:
        counters.bump("verifier_failures/infra_failed_samples", failed)
        counters.bump("verifier_failures/masked_samples", int((~valid).sum()))
        dropped = int((~valid.view(-1, scored.group_size)).all(dim=1).sum())
        if dropped:
            counters.bump("verifier_failures/groups_dropped", dropped)


@dataclass
class UpdateBatch:
    """A scored rollout as the update takes it: N rows, of which the first `real_rows` train."""

    inputs: PolicyInputs
    advantages: Tensor  # [N]
    loss_mask: Tensor  # [N, T] bool
    features: tuple[Tensor, ...] | None  # frozen-ViT features per prompt, or None (pixels in the inputs)
    real_rows: int
    behaviour_logprobs: Tensor | None = None  # [N, T] the sampling policy's (asynchronous rollouts), else None


def update_batch(scored: ScoredRollout, enc: EncodedPrompts, *, policy: Any, tokenizer: Any, device: torch.device,
                 valid: Tensor, features: tuple[Tensor, ...] | None, scale_rewards: str, overlong_filter: bool,
                 padding_groups: int = 0, behaviour: bool = False) -> UpdateBatch:
    """The policy inputs, group advantages and loss mask of `scored`, whose prompts `enc` holds encoded.
    `valid` ([N] bool) rows carry signal (verifier timeouts and crashes do not); the last `padding_groups`
    groups only pad the micro-batches (dynamic sampling under DDP): their rows count no token and carry no
    advantage. `behaviour`: the importance ratio is taken against the engine's sampling log-probs
    (`scored.sampling_logprobs`: asynchronous rollouts), not against the policy being updated."""
    image_token_id = getattr(policy.config, "image_token_id", None)
    # With features, no forward pass needs pixels: skip copying each prompt's patches once per row.
    inputs = build_policy_inputs(policy, enc, scored.completion_ids, scored.prompt_index,
                                 tokenizer.pad_token_id, image_token_id, pixels=features is None).to(device)
    rewards = scored.row_tensor("reward").to(device)  # [N]
    valid = valid.to(device)  # [N]
    advantages = group_advantages(rewards, scored.group_size, scale_rewards, valid=valid)  # [N]
    loss_mask = inputs.completion_mask.clone() & valid.unsqueeze(1)  # [N, T]
    if overlong_filter:
        loss_mask &= ~scored.truncated.to(device).unsqueeze(1)
    real = len(scored.completion_ids) - padding_groups * scored.group_size  # rows that train
    if padding_groups:
        loss_mask[real:] = False
        advantages[real:] = 0.0
    behaviour_lp = None
    if behaviour:
        behaviour_lp = torch.zeros(loss_mask.shape, dtype=torch.float32)  # [N, T]
        for i, row in enumerate(scored.sampling_logprobs):
            t = min(len(row), behaviour_lp.shape[1])
            behaviour_lp[i, :t] = torch.tensor(row[:t], dtype=torch.float32)
        behaviour_lp = behaviour_lp.to(device)
    return UpdateBatch(inputs, advantages, loss_mask, features, real, behaviour_lp)


def update_policy(batch: UpdateBatch, *, policy: Any, settings: UpdateSettings, backward: Any, step: Any,
                  ref_policy: Any | None = None) -> dict[str, float]:
    """`run_update` on `batch`, with the advantage figure; a rank that only pads reports no per-token figure."""
    stats = run_update(
        model=policy, inputs=batch.inputs, advantages=batch.advantages, loss_mask=batch.loss_mask,
        settings=settings, features=batch.features, backward=backward, step=step,
        global_token_count=global_mean_count, ref_model=ref_policy, behaviour_logprobs=batch.behaviour_logprobs,
    )
    real = batch.real_rows
    stats["advantage_abs_mean"] = float(batch.advantages[:real].abs().mean()) if real else 0.0
    if not real:  # a rank that only pads has no tokens: leave the per-token means to the other ranks
        for key in [k for k in stats if k.startswith(("clip_ratio/", "ratio_", "approx_kl", "kl_"))]:
            del stats[key]
        del stats["advantage_abs_mean"]
    return stats


def rollout_metrics(scored: ScoredRollout, groups_zero_std: Tensor) -> dict[str, Any]:
    """The per-step figures of a training rollout (this rank's)."""
    lengths = torch.tensor([len(c) for c in scored.completion_ids], dtype=torch.float32)
    return {
        "train/reward_mean": scored.row_tensor("reward").mean(),
        "train/accuracy_mean": scored.row_tensor("accuracy").mean(),
        "train/format_mean": scored.row_tensor("format").mean(),
        "train/response_length_mean": lengths.mean(),
        "train/groups_zero_std": groups_zero_std,
        "time/generate": scored.timings.get("generate", 0.0),
        "time/reward": scored.timings.get("reward", 0.0),
    }


def mean_over_parts(parts: list[dict[str, float]]) -> dict[str, float]:
    """Each key's mean over the parts that have it."""
    keys = sorted({k for p in parts for k in p})
    return {k: sum(p[k] for p in parts if k in p) / sum(1 for p in parts if k in p) for k in keys}


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each key's mean over the ranks that have it (one all_gather_object); `values` in one process."""
    return mean_over_parts(gather_objects(values))


def global_mean_count(local: Tensor) -> Tensor:
    """Token count of the whole update over all ranks, divided by the world size: DDP averages the
    gradients, so dividing each rank's token sum by this gives the global token mean."""
    if dist.is_available() and dist.is_initialized():
        total = local.detach().clone()
        dist.all_reduce(total)
        return total / dist.get_world_size()
    return local.detach()
