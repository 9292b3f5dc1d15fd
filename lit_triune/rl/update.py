"""One policy update from a scored rollout batch: old log-probs, minibatches, clipping, non-finite guard."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lit_triune.models.policy_inputs import PolicyInputs
from lit_triune.rl.logprobs import completion_logprobs
from lit_triune.rl.loss import ClippedPolicyLoss, DAPOLoss

BEHAVIOUR_OBJECTIVES = ("decoupled", "behaviour_clip")


@dataclass
class UpdateSettings:
    loss: ClippedPolicyLoss = field(default_factory=DAPOLoss)  # the clipped surrogate and its aggregation
    temperature: float = 1.0
    updates_per_rollout: int = 1  # 1: on-policy; k: k minibatch optimizer steps (off-policy after the first)
    micro_batch_size: int | None = None  # rows per forward; gradients accumulate within a minibatch
    max_completion_length: int | None = None
    shared_prefix: bool = True  # run each group's prompt once, completions per row (logprobs.completion_logprobs)
    # With behaviour log-probs (asynchronous rollouts): "decoupled" takes the trust region around the policy
    # before this update and weights tokens by π_old / π_behaviour (loss.policy_loss); "behaviour_clip" takes
    # the clipped ratio against π_behaviour itself.
    behaviour_objective: str = "decoupled"

    def __post_init__(self) -> None:
        if self.behaviour_objective not in BEHAVIOUR_OBJECTIVES:
            raise ValueError(f"behaviour_objective must be one of {BEHAVIOUR_OBJECTIVES}, "
                             f"got {self.behaviour_objective!r}")


def chunk_rows(rows: Tensor, size: int | None) -> list[Tensor]:
    """`rows` split into micro-batches of `size` (None or a size >= len: one micro-batch)."""
    if not size or size >= rows.numel():
        return [rows]
    return list(torch.split(rows, size))


def by_group_length(rows: Tensor, inputs: PolicyInputs) -> Tensor:  # [M] long, a permutation of `rows`
    """`rows` with each prompt's rows kept together and prompts ordered by their longest completion.

    A micro-batch is padded to its longest row, so mixing a 100-token detection answer with 10-token
    numbers pads every row to 100; ordered, each micro-batch pads to its own kind. Keeping a group
    whole runs its shared prompt once per micro-batch. The loss is a sum over tokens (or rows, weighted
    by share), so the order changes no figure beyond float summation order.
    """
    lengths = inputs.completion_mask[rows].sum(-1).tolist()  # M
    prompts = inputs.prompt_index[rows].tolist()  # M
    longest: dict[int, int] = {}
    for p, n in zip(prompts, lengths, strict=True):
        longest[p] = max(longest.get(p, 0), n)
    order = sorted(range(len(prompts)), key=lambda i: (longest[prompts[i]], prompts[i], i))
    return rows[torch.as_tensor(order, dtype=torch.long)]


@torch.no_grad()
def batched_logprobs(model: Any, inputs: PolicyInputs, rows: Tensor, settings: UpdateSettings,
                     features: tuple[Tensor, ...] | None) -> Tensor:  # [N, T]
    out = torch.zeros(inputs.completion_ids.shape, dtype=torch.float32, device=inputs.input_ids.device)
    if settings.micro_batch_size:
        rows = by_group_length(rows, inputs)
    for chunk in chunk_rows(rows, settings.micro_batch_size):
        sub = inputs.select(chunk)
        lp = completion_logprobs(model, sub, temperature=settings.temperature, features=features,
                                 shared_prefix=settings.shared_prefix)  # [M, t]
        out[chunk, : lp.shape[1]] = lp
    return out


def run_update(
    *,
    model: Any,
    inputs: PolicyInputs,  # N rows
    advantages: Tensor,  # [N]
    loss_mask: Tensor,  # [N, T] bool: completion tokens that count (overlong-filtered rows all False)
    settings: UpdateSettings,
    features: tuple[Tensor, ...] | None,
    backward: Callable[[Tensor], None],
    step: Callable[[bool], tuple[bool, float]],  # step(finite): clip and step, or drop the grads; (stepped, norm)
    global_token_count: Callable[[Tensor], Tensor],  # local count -> count over all ranks / world size
    ref_model: Any | None = None,
    behaviour_logprobs: Tensor | None = None,  # [N, T] the policy that sampled the rows (asynchronous rollouts)
) -> dict[str, float]:
    """Runs `updates_per_rollout` optimizer steps over disjoint minibatches of the N rows.

    On-policy with one update, π_old = π_θ (detached): no extra forward pass (the ratio is 1 and
    only the clip-free gradient remains, as in TRL). Otherwise π_old is recomputed once, before the
    first step, with the same code — so the ratio measures drift from updates, not engine mismatch.
    With `behaviour_logprobs` (asynchronous rollouts, sampled by older weights: the engine's own log-probs
    of the tokens it sampled), `settings.behaviour_objective` "decoupled" keeps π_old as above (the
    proximal policy) and weights each token by π_old / π_behaviour; "behaviour_clip" makes π_behaviour
    π_old.
    """
    n = inputs.input_ids.shape[0]
    all_rows = torch.arange(n)
    k = max(1, settings.updates_per_rollout)
    decoupled = behaviour_logprobs is not None and settings.behaviour_objective == "decoupled"
    if behaviour_logprobs is not None and not decoupled:
        old = behaviour_logprobs
    else:
        old = None if k == 1 else batched_logprobs(model, inputs, all_rows, settings, features)
    ref = batched_logprobs(ref_model, inputs, all_rows, settings, None) if ref_model is not None else None
    stats: dict[str, float] = {"loss": 0.0, "grad_norm": 0.0, "skipped_nonfinite": 0.0, "steps": 0.0}
    diag_sums: dict[str, float] = {}
    minibatches = [m for m in torch.chunk(all_rows, k) if m.numel()]
    for rows in minibatches:
        if settings.micro_batch_size:
            rows = by_group_length(rows, inputs)
        tokens = global_token_count(loss_mask[rows].sum().float())
        local_tokens = float(loss_mask[rows].sum())
        loss_total = 0.0
        finite = True
        for chunk in chunk_rows(rows, settings.micro_batch_size):
            sub = inputs.select(chunk)
            lp = completion_logprobs(model, sub, temperature=settings.temperature, features=features,
                                     shared_prefix=settings.shared_prefix)  # [M, t]
            t = lp.shape[1]
            old_lp = lp.detach() if old is None else old[chunk, :t]
            loss, diag = settings.loss(
                lp, old_lp, advantages[chunk], loss_mask[chunk, :t], num_tokens=tokens,
                max_completion_length=settings.max_completion_length,
                ref_logprobs=None if ref is None else ref[chunk, :t],
                behaviour_logprobs=behaviour_logprobs[chunk, :t] if decoupled else None,
            )
            if settings.loss.aggregation != "token":  # per-row means: weight micro-batches by their share of rows
                loss = loss * chunk.numel() / rows.numel()
            if not torch.isfinite(loss):
                # No early exit: under DDP every backward is a collective, so each rank runs all of its
                # micro-batches; the step is then skipped on every rank (the caller agrees across ranks).
                finite = False
            backward(loss)
            loss_total += float(loss.detach())
            # diagnostics are per-token means of the micro-batch: weight by its share of the minibatch's tokens
            share = float(loss_mask[chunk].sum()) / local_tokens if local_tokens else chunk.numel() / rows.numel()
            for key, value in diag.items():
                diag_sums[key] = diag_sums.get(key, 0.0) + float(value) * share / len(minibatches)
        stepped, grad_norm = step(finite)
        stats["steps"] += float(stepped)
        stats["skipped_nonfinite"] += float(not stepped)
        stats["loss"] += loss_total / len(minibatches)
        stats["grad_norm"] += (grad_norm if math.isfinite(grad_norm) else 0.0) / len(minibatches)
    stats.update(diag_sums)
    return stats
