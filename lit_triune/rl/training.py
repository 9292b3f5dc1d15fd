"""The GRPO/DAPO training step of TriuneModule: rollout -> advantages -> dynamic sampling -> update."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from lit_triune.rl.advantages import group_advantages, informative_groups
from lit_triune.rl.distributed import gather_objects
from lit_triune.rl.policy_inputs import build_policy_inputs, encode_prompts
from lit_triune.rl.rollout_step import ScoredRollout
from lit_triune.rl.update import run_update


class GRPOTrainerMixin:
    """Mixed into TriuneModule; kept apart so the LightningModule file stays about wiring."""

    def grpo_step(self, batch: Any) -> dict[str, Any]:
        hp = self.hparams
        g = hp.group_size
        scored = self.runner.rollout(batch, salt=self._refills)
        out: dict[str, Any] = {"rollout": scored.records()}
        accuracy = scored.row_tensor("accuracy")  # [N]
        group_acc_std_zero = (~informative_groups(accuracy, g)).float().mean()
        self._log_rollout(scored, group_acc_std_zero)
        if hp.dynamic_sampling:
            keep = informative_groups(accuracy, g).nonzero().flatten().tolist()
            self._pending.append(scored.select_groups(keep))
            have = sum(p.num_groups for p in self._pending)
            if have < len(batch.prompts) and self._refills < hp.max_refill_batches:
                self._refills += 1
                self._bump("dynamic_sampling/refills")
                return out
            merged = ScoredRollout.concat(self._pending)
            merged = merged.select_groups(list(range(min(len(batch.prompts), merged.num_groups))))
            self._pending, self._refills = [], 0
            if merged.num_groups == 0:
                self._bump("dynamic_sampling/updates_without_signal")
                return out
        else:
            merged = scored
        stats = self._update(merged)
        # logged values are global: each rank's figures averaged over the ranks
        self.log_dict(_mean_over_ranks({f"train/{k}": float(v) for k, v in stats.items()}),
                      batch_size=len(batch.prompts))
        out["loss"] = torch.tensor(stats["loss"])
        return out

    def _update(self, scored: ScoredRollout) -> dict[str, float]:
        hp = self.hparams
        t0 = time.perf_counter()
        # The rollout's own encoding (and frozen-ViT features) when the engine took them; else encode here.
        enc = scored.encoded if scored.encoded is not None else encode_prompts(self.processor, scored.prompts,
                                                                                scored.images)
        tok = self.processor.tokenizer
        image_token_id = getattr(self.policy.config, "image_token_id", None)
        features = None
        if self.vision_frozen and hp.cache_vision_features and enc.pixel_values is not None:
            features = enc.image_features if enc.image_features is not None else self.runner.image_features(enc)
        # With features, no forward pass needs pixels: skip copying each prompt's patches once per row.
        inputs = build_policy_inputs(self.policy, enc, scored.completion_ids, scored.prompt_index,
                                     tok.pad_token_id, image_token_id, pixels=features is None).to(self.device)
        rewards = scored.row_tensor("reward").to(self.device)  # [N]
        advantages = group_advantages(rewards, scored.group_size, hp.scale_rewards)  # [N]
        loss_mask = inputs.completion_mask.clone()  # [N, T]
        if hp.overlong_filter:
            loss_mask &= ~scored.truncated.to(self.device).unsqueeze(1)
        rl_opt = self.optimizers()[0] if isinstance(self.optimizers(), list) else self.optimizers()
        schedulers = self.lr_schedulers()
        rl_sched = schedulers[0] if isinstance(schedulers, list) else schedulers

        def step(finite: bool) -> tuple[bool, float]:
            stepped, norm = self._clip_and_step(rl_opt, finite)
            if stepped and rl_sched is not None:
                rl_sched.step()
            return stepped, norm

        self.policy.train()
        self._keep_frozen_in_eval()
        stats = run_update(
            model=self.policy, inputs=inputs, advantages=advantages, loss_mask=loss_mask,
            settings=self.update_settings, features=features, backward=self.manual_backward, step=step,
            global_token_count=_global_mean_count, ref_model=self.ref_policy,
        )
        stats["time/update"] = time.perf_counter() - t0
        stats["advantage_abs_mean"] = float(advantages.abs().mean())
        stats["lr"] = float(rl_opt.optimizer.param_groups[0]["lr"])
        return stats

    def _log_rollout(self, scored: ScoredRollout, std_zero: Tensor) -> None:
        n = len(scored.texts)
        lengths = torch.tensor([len(c) for c in scored.completion_ids], dtype=torch.float32)
        metrics = {
            "train/reward_mean": scored.row_tensor("reward").mean(),
            "train/accuracy_mean": scored.row_tensor("accuracy").mean(),
            "train/format_mean": scored.row_tensor("format").mean(),
            "train/response_length_mean": lengths.mean(),
            "train/groups_zero_std": std_zero,
            "time/generate": scored.timings.get("generate", 0.0),
            "time/reward": scored.timings.get("reward", 0.0),
        }
        counts = {key: float(value) for key, value in self._counters.items()}
        # Global figures under DDP (one gather): every rank rolls out as many groups, so the global mean is
        # the mean of the ranks' means; counts add up, except steps skipped, which every rank skips alike.
        parts = gather_objects(({k: float(v) for k, v in metrics.items()}, counts))
        logged = _mean_over_parts([p[0] for p in parts])
        for key in sorted({k for _, c in parts for k in c}):
            values = [c.get(key, 0.0) for _, c in parts]
            logged[key] = max(values) if key in _SAME_ON_ALL_RANKS else sum(values)
        self.log_dict(logged, batch_size=max(1, n // scored.group_size))

    def _bump(self, key: str) -> None:
        self._counters[key] = self._counters.get(key, 0) + 1


_SAME_ON_ALL_RANKS = frozenset({"nonfinite_steps_skipped"})  # optimizer-step events: ranks agree (on_all_ranks)


def _mean_over_parts(parts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for p in parts for k in p})
    return {k: sum(p[k] for p in parts if k in p) / sum(1 for p in parts if k in p) for k in keys}


def _mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each key's mean over the ranks that have it (one all_gather_object); `values` in one process."""
    return _mean_over_parts(gather_objects(values))


def _global_mean_count(local: Tensor) -> Tensor:
    """Token count of the whole update over all ranks, divided by the world size: DDP averages the
    gradients, so dividing each rank's token sum by this gives the global token mean."""
    if dist.is_available() and dist.is_initialized():
        total = local.detach().clone()
        dist.all_reduce(total)
        return total / dist.get_world_size()
    return local.detach()
