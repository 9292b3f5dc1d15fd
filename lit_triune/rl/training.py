"""The GRPO/DAPO training step of TriuneModule: rollout -> advantages -> dynamic sampling -> update."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
from lit_triune.private_api import forget_logged
from lit_triune.rl.advantages import INFRA_FAILURES, group_advantages, informative_groups, valid_rows
from lit_triune.rl.distributed import gather_objects, max_over_ranks, on_all_ranks
from lit_triune.rl.rollout_step import ScoredRollout
from lit_triune.rl.update import run_update


class GRPOTrainerMixin:
    """Mixed into TriuneModule; kept apart so the LightningModule file stays about wiring."""

    def grpo_step(self, batch: Any) -> dict[str, Any]:
        hp = self.hparams
        g = hp.group_size
        self._forget("warm_start")  # the warm-start's figures end with it
        scored = self.runner.rollout(batch, salt=self._refills)
        out: dict[str, Any] = {"rollout": scored.records()}
        accuracy = scored.row_tensor("accuracy")  # [N]
        valid = self._count_verifier_failures(scored)  # [N]
        group_acc_std_zero = (~informative_groups(accuracy, g, valid)).float().mean()
        merged, padding = self._dynamic_sampling(scored, len(batch.prompts)) if hp.dynamic_sampling else (scored, 0)
        if merged is None:  # a refill step, or no signal on any rank: no update on any rank
            self._forget("update")
        else:
            stats = self._update(merged, padding_groups=padding)
            # logged values are global: each rank's figures averaged over the ranks
            logged = _mean_over_ranks({f"train/{k}": float(v) for k, v in stats.items()})
            self._stale_keys["update"] = set(logged)
            self.log_dict(logged, batch_size=len(batch.prompts))
            out["loss"] = torch.tensor(stats["loss"])
        # After the update, so the counters (refills, skipped steps, ...) include this step's events.
        self._log_rollout(scored, group_acc_std_zero)
        return out

    def _dynamic_sampling(self, scored: ScoredRollout, target: int) -> tuple[ScoredRollout | None, int]:
        """DAPO's filter and refill, decided alike on every rank (DDP: same steps, same backward passes).

        Keeps this rollout's informative groups. Refills (returns None) while *any* rank holds fewer than
        `target` of them and refills remain -- one all-reduce, so all ranks refill or update together.
        At update time each rank takes up to `target` of its groups; a rank short of the most any rank
        has pads with groups of its latest rollout whose rows carry no loss (`padding`, masked in
        `_update`), so every rank runs the same micro-batches. If no rank has any, all skip and count it.
        """
        g = scored.group_size
        keep = informative_groups(scored.row_tensor("accuracy"), g, self._valid_rows(scored)).nonzero().flatten().tolist()
        self._pending.append(scored.select_groups(keep))
        have = sum(p.num_groups for p in self._pending)
        full = on_all_ranks(have >= target, self.device)
        if not full and self._refills < self.hparams.max_refill_batches:  # _refills: same on all ranks
            self._refills += 1
            self._bump("dynamic_sampling/refills")
            return None, 0
        merged = ScoredRollout.concat(self._pending)
        merged = merged.select_groups(list(range(min(target, merged.num_groups))))
        self._pending, self._refills = [], 0
        most = max_over_ranks(merged.num_groups, self.device)
        if most == 0:
            self._bump("dynamic_sampling/updates_without_signal")
            return None, 0
        padding = most - merged.num_groups
        if padding:
            self._bump("dynamic_sampling/padding_groups")
            pad = scored.select_groups([i % scored.num_groups for i in range(padding)])
            merged = pad if merged.num_groups == 0 else ScoredRollout.concat([merged, pad])
        return merged, padding

    def _forget(self, group: str) -> None:
        """Lightning keeps re-logging a `self.log` key's last value on every later step of the epoch (this
        stream is one long epoch): drop a group of figures on the steps that do not produce them — the
        previous update's on a refill step, the warm-start's once RL runs — so the logs hold each figure
        only at the steps that made it (no public Lightning API: lit_triune/private_api.py);
        `trainer.callback_metrics` keeps the last values."""
        keys = self._stale_keys.pop(group, None)
        if keys and self._trainer is not None:
            forget_logged(self.trainer, keys)

    def _update(self, scored: ScoredRollout, padding_groups: int = 0) -> dict[str, float]:
        """One policy update on `scored`; its last `padding_groups` groups only pad the micro-batches
        (dynamic sampling under DDP): their rows count no token and carry no advantage."""
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
        valid = self._valid_rows(scored).to(self.device)  # [N]: verifier timeouts/crashes carry no signal
        advantages = group_advantages(rewards, scored.group_size, hp.scale_rewards, valid=valid)  # [N]
        loss_mask = inputs.completion_mask.clone() & valid.unsqueeze(1)  # [N, T]
        if hp.overlong_filter:
            loss_mask &= ~scored.truncated.to(self.device).unsqueeze(1)
        real = len(scored.completion_ids) - padding_groups * scored.group_size  # rows that train
        if padding_groups:
            loss_mask[real:] = False
            advantages[real:] = 0.0
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
        stats["advantage_abs_mean"] = float(advantages[:real].abs().mean()) if real else 0.0
        if not real:  # a rank that only pads has no tokens: leave the per-token means to the other ranks
            for key in [k for k in stats if k.startswith(("clip_ratio/", "ratio_", "approx_kl", "kl_"))]:
                del stats[key]
            del stats["advantage_abs_mean"]
        stats["lr"] = float(rl_opt.optimizer.param_groups[0]["lr"])
        return stats

    def _valid_rows(self, scored: ScoredRollout) -> Tensor:  # [N] bool
        """Rows whose reward is the verifier's judgement: not a timeout or crash (`verifier_failures`)."""
        failed = torch.tensor([r.get("failure") in INFRA_FAILURES for r in scored.results], dtype=torch.bool)
        return valid_rows(failed, scored.group_size, self.hparams.get("verifier_failures", "renormalize"))

    def _count_verifier_failures(self, scored: ScoredRollout) -> Tensor:  # [N] bool, the valid rows
        valid = self._valid_rows(scored)
        failed = sum(r.get("failure") in INFRA_FAILURES for r in scored.results)
        if failed:
            self._bump("verifier_failures/infra_failed_samples", failed)
            self._bump("verifier_failures/masked_samples", int((~valid).sum()))
            dropped = int((~valid.view(-1, scored.group_size)).all(dim=1).sum())
            if dropped:
                self._bump("verifier_failures/groups_dropped", dropped)
        return valid

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
        self._log_counters(max(1, n // scored.group_size), metrics)

    def _log_counters(self, batch_size: int, metrics: dict[str, Any] | None = None) -> None:
        """Logs the checkpointed counters (data skips, non-finite steps, refills, masked samples, ...) and
        `metrics`; called on every training step of every stage, on all ranks alike."""
        counts = {key: float(value) for key, value in self._counters.items()}
        counts["data_skipped/total"] = sum(v for k, v in counts.items() if k.startswith("data_skipped/"))
        # Global figures under DDP (one gather): every rank rolls out as many groups, so the global mean is
        # the mean of the ranks' means; counts add up, except steps skipped, which every rank skips alike.
        parts = gather_objects(({k: float(v) for k, v in (metrics or {}).items()}, counts))
        logged = _mean_over_parts([p[0] for p in parts])
        for key in sorted({k for _, c in parts for k in c}):
            values = [c.get(key, 0.0) for _, c in parts]
            logged[key] = max(values) if key in _SAME_ON_ALL_RANKS else sum(values)
        self.log_dict(logged, batch_size=batch_size)

    def _bump(self, key: str, by: float = 1) -> None:
        """Adds to a checkpointed, logged counter (`self._counters`)."""
        self._counters[key] = self._counters.get(key, 0) + by


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
