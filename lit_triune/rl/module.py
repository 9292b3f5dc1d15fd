"""TriuneModule: the V-Triune GRPO/DAPO recipe as a LightningModule under manual optimization.

One training batch = B prompts. The rollout engine (HF generate by default; vLLM through the
RolloutCallback) samples G completions per prompt, the verifier pool scores them with the current
IoU threshold, and the policy takes `updates_per_rollout` clipped-surrogate steps. An optional
supervised warm-start stage (`warm_start_steps`) stands in for the instruct model the paper starts
from; it is the CPU default's first stage and off in the paper recipe.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lit_triune.models.policy_inputs import encode_prompts
from lit_triune.models.sharding import fsdp_root, trainer_fsdp_root
from lit_triune.private_api import forget_logged, save_last_at_end
from lit_triune.rl import optimizers, training
from lit_triune.rl import policy as policy_lib
from lit_triune.rl.advantages import VERIFIER_FAILURE_POLICIES, informative_groups
from lit_triune.rl.async_rollouts import AsyncRollouts
from lit_triune.rl.counters import RunCounters, combine_ranks
from lit_triune.rl.distributed import gather_objects
from lit_triune.rl.dynamic_sampling import DynamicSampler, SamplerDecision
from lit_triune.rl.loss import ClippedPolicyLoss, DAPOLoss
from lit_triune.rl.optimizer_step import ClippedStepper, StepOutcome
from lit_triune.rl.rollout_step import RolloutContext, RolloutRunner, RolloutSettings, frozen_image_features
from lit_triune.rl.scoring import RewardScorer
from lit_triune.rl.stage_report import StageReporter
from lit_triune.rl.update import UpdateSettings
from lit_triune.rl.warm_start import warm_start_backward


def warm_start_lr_scale(step: int, steps: int, floor: float = 0.1) -> float:
    """Cosine from 1 at step 0 to `floor` at `steps` (and after): the warm-start's learning-rate factor."""
    progress = min(max(step, 0), steps) / max(steps, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class TriuneModule(pl.LightningModule):
    """GRPO/DAPO for image-text-to-text policies, with the V-Triune defaults.

    The module wires owned collaborators: a `RolloutRunner` (sampling and scoring, given a `RolloutContext`
    per call), a `DynamicSampler` (DAPO's filter), a `ClippedStepper` (clipping and the non-finite guard,
    returning a `StepOutcome`), the run's `RunCounters` (checkpointed) and a `StageReporter`.

    Args:
        model_path: HF checkpoint directory (e.g. a Qwen2.5-VL-7B-Instruct), a Hugging Face Hub id read from
            the Hub cache (`Qwen/Qwen2.5-VL-7B-Instruct`; lit_triune/models/paths.py) or a built-in preset
            name (`tiny`, `small`) built offline by `lit_triune.models.tiny`.
        freeze: "vision" (paper default), "language" or "none" during RL. Frozen parts are in eval
            mode and outside the optimizer.
        dtype: torch dtype name the policy is loaded in ("float32", "bfloat16", ...); mixed precision
            is the Trainer's `precision`.
        attn_implementation: HF attention backend ("sdpa", "eager", "flash_attention_2"); None lets
            transformers choose.
        lr: RL learning rate of the default AdamW (paper: 1e-6, constant after `warmup_steps` of linear warm-up).
        warmup_steps: RL steps of linear learning-rate warm-up of the default schedule (0 = constant from the
            first RL step).
        weight_decay: weight decay of the default AdamW.
        adam_betas: (beta1, beta2) of the default AdamW.
        optimizer: the RL optimizer as a class_path (`{class_path: torch.optim.SGD, init_args: {lr: 0.01}}`);
            None = AdamW with `lr`, `adam_betas`, `weight_decay` (rl/optimizers.py).
        lr_scheduler: the RL learning-rate scheduler as a class_path, stepped once per RL update; None =
            linear warm-up over `warmup_steps`, then constant (`lit_triune.rl.optimizers.LinearWarmup`).
        max_grad_norm: gradient-norm clipping threshold of every optimizer step (both stages).
        group_size: G completions per prompt.
        max_new_tokens: longest completion sampled in training; longer ones are cut and counted as
            truncated.
        temperature: sampling temperature of the training rollouts (validation decodes greedily; see `val_samples`).
        top_p: nucleus-sampling mass of the training rollouts (1.0 = off).
        top_k: top-k of the training rollouts (0 = off).
        val_max_new_tokens: longest completion in validation and stage reports; None = `max_new_tokens`.
        val_samples: stage reports also sample this many completions per validation prompt and report
            their mean figures under `sampled/<metric>` (avg@k: the expected reward of the sampling policy,
            which is what GRPO raises; DeepSeek-R1 and DAPO report accuracy this way). 0 = greedy only.
        val_temperature: sampling temperature of those samples; None = `temperature`.
        val_iou_threshold: validation and stage reports score box rewards at this fixed IoU threshold (0.5: the
            Acc@0.5 / AP50 convention), so a report after the dynamic schedule has risen to 0.99 is compared with
            one taken at 0.85 on the same yardstick; None = the current training threshold.
        loss: the policy loss, a `class_path` (lit_triune/rl/loss.py): `DAPOLoss` (token aggregation, the
            paper's; the default, with clip_low 0.2, clip_high 0.28, no dual clip, no KL), `GRPOLoss`
            (per-sequence means) or `DrGRPOLoss` (fixed normaliser), each with `clip_low`, `clip_high`,
            `dual_clip` and `kl_coef` (a non-zero `kl_coef` loads a frozen reference policy), or a subclass.
        scale_rewards: "group" (divide advantages by the group std), "batch" or "none".
        updates_per_rollout: 1 = on-policy; k > 1 = k minibatch optimizer steps per rollout batch.
        micro_batch_size: rows per forward/backward pass in the update and the warm-start (gradients
            accumulate within a minibatch); None = the whole minibatch at once. Micro-batches take rows
            (RL: whole groups) ordered by their longest completion, so short answers are not padded to
            the longest one.
        dynamic_sampling: DAPO's filter: drop groups whose accuracy has zero std and refill from
            up to `max_refill_batches` further batches before updating. Under DDP the ranks decide
            together (refill while any rank is short) and run the same micro-batches (rl/dynamic_sampling.py).
        max_refill_batches: extra rollout batches dynamic sampling may draw per update (0 = none).
        overlong_filter: exclude truncated completions from the loss (DAPO overlong filtering).
        cache_vision_features: with a frozen ViT, compute image features once per rollout batch.
        shared_prefix_update: in the update, run each group's prompt through the language model once
            and only the completions per row (same log-probs and gradients, also under non-reentrant
            activation checkpointing; a reentrant one falls back to full rows with a warning).
        gradient_checkpointing: HF's activation checkpointing (non-reentrant) of every decoder layer and
            ViT block, for one device or DDP. Under FSDP use the strategy's
            `activation_checkpointing_policy` instead (conf/orsta.yaml).
        reward_workers: verifier worker processes per trainer process (0 = score in-process).
        reward_timeout_s: hard time limit in seconds for scoring one completion; over it the sample is
            reported as a timeout.
        compat: None scores with lit-triune's verifiers; "vtriune" scores as the released V-Triune
            reward server does.
        verifier_failures: what a completion whose scoring failed for infrastructure reasons (failure
            "timeout" or "crash") does to its group: "renormalize" (default) leaves it out of the loss and
            computes the group's advantages over the others; "drop_group" leaves the whole group out.
            Counted in `verifier_failures/*`. A "parse" failure is the model's and stays a zero reward.
        iou_threshold: current IoU threshold ε for box rewards. The module is its one owner: it is checkpointed
            here and handed to the verifiers in each `RolloutContext`; a DynamicIoUThreshold callback sets it
            on schedule (and keeps only the schedule).
        warm_start_steps: supervised steps before RL (0 = none); `warm_start_lr`,
            `warm_start_freeze` apply to them.
        warm_start_lr: AdamW learning rate of the supervised warm-start; cosine-decayed to a tenth of
            it over `warm_start_steps` (`warm_start_lr_scale`), so the model RL starts from is the
            settled end of the warm-start, not wherever a constant 2e-3 step last threw it.
        warm_start_freeze: what is frozen during the warm-start: "none" (the whole model trains,
            ViT included), "vision" or "language".
        stage_reports: print and log per-source validation figures at the start ("init"), at the end of
            the warm-start ("after_warm_start") and at the end of training ("final"): true for all three,
            false for none, or a list of those names (the init report of a random model costs as much as
            the others and shows zeros).
        seed: seed of rollout sampling and of the data order (linked to `data.seed`).
        rollout_seed: seed of rollout sampling alone (None: `seed`). Another value keeps the data order, the
            initialisation and the supervised warm-start, and draws other samples: two RL runs that differ
            only in their random draws, the control for sampling noise when comparing variants.
        async_rollouts: generate the next batch while the current update runs (one-step off-policy, as verl's
            and AReaL's asynchronous modes), in an engine with its own process (`lit_triune.rollout.RemoteEngine`
            through the RolloutCallback, which must push after every step); the importance ratio is taken
            against the engine's sampling log-probs; the first RL step of a run only submits. False (default):
            the paper's on-policy loop. With `dynamic_sampling` a refill step trains on nothing and the groups
            kept wait for the update (no optimizer step in between, so staleness stays <= `max_staleness`).
            See rl/async_rollouts.py.
        max_staleness: with `async_rollouts`, rollouts kept in flight: an update trains on samples of weights
            at most this many optimizer steps old.
        async_objective: with `async_rollouts`, how the update treats the older sampling policy: "decoupled"
            (default; AReaL's objective: the clip acts around the weights before this update, each token
            weighted by π_old / π_behaviour truncated at `loss.behaviour_weight_cap`) or "behaviour_clip" (the
            clipped ratio taken against π_behaviour, which also clips the drift of the previous update).
    """

    def __init__(
        self,
        model_path: str = "tiny",
        freeze: str = "vision",
        dtype: str = "float32",
        attn_implementation: str | None = None,
        lr: float = 1e-6,
        warmup_steps: int = 0,
        weight_decay: float = 0.0,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        max_grad_norm: float = 1.0,
        group_size: int = 8,
        max_new_tokens: int = 2048,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        val_max_new_tokens: int | None = None,
        val_samples: int = 0,
        val_temperature: float | None = None,
        val_iou_threshold: float | None = None,
        loss: ClippedPolicyLoss | None = None,
        scale_rewards: str = "group",
        updates_per_rollout: int = 1,
        micro_batch_size: int | None = None,
        dynamic_sampling: bool = False,
        max_refill_batches: int = 0,
        overlong_filter: bool = False,
        cache_vision_features: bool = True,
        shared_prefix_update: bool = True,
        gradient_checkpointing: bool = False,
        reward_workers: int = 2,
        reward_timeout_s: float = 10.0,
        compat: str | None = None,
        verifier_failures: str = "renormalize",
        iou_threshold: float = 0.85,
        warm_start_steps: int = 0,
        warm_start_lr: float = 2e-3,
        warm_start_freeze: str = "none",
        stage_reports: bool | list[str] = True,
        seed: int = 0,
        rollout_seed: int | None = None,
        async_rollouts: bool = False,
        max_staleness: int = 1,
        async_objective: str = "decoupled",
    ) -> None:
        super().__init__()
        for name, value in (("freeze", freeze), ("warm_start_freeze", warm_start_freeze)):
            if value not in policy_lib.FREEZE_CHOICES:
                raise ValueError(f"{name} must be one of {policy_lib.FREEZE_CHOICES}, got {value!r}")
        if group_size < 1 or (group_size < 2 and scale_rewards != "none"):
            raise ValueError(f"group_size must be >= 2 for group-normalised advantages, got {group_size}")
        if updates_per_rollout < 1:
            raise ValueError(f"updates_per_rollout must be >= 1, got {updates_per_rollout}")
        if val_samples < 0:
            raise ValueError(f"val_samples must be >= 0, got {val_samples}")
        if val_iou_threshold is not None and not 0.0 < val_iou_threshold <= 1.0:
            raise ValueError(f"val_iou_threshold must be in (0, 1] or None, got {val_iou_threshold}")
        if verifier_failures not in VERIFIER_FAILURE_POLICIES:
            raise ValueError(f"verifier_failures must be one of {VERIFIER_FAILURE_POLICIES}, got {verifier_failures!r}")
        # the CLI's config keeps these objects; a checkpoint's hyperparameters hold plain values only
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "loss"])
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        if unused := optimizers.shadowed_settings(
                optimizer, lr_scheduler, given={"lr": lr, "adam_betas": adam_betas, "weight_decay": weight_decay,
                                                "warmup_steps": warmup_steps}, defaults=_DEFAULTS):
            rank_zero_warn(f"model.optimizer / model.lr_scheduler are set, so model settings {unused} are not used: "
                           "set them in the optimizer's or scheduler's init_args")
        self.automatic_optimization = False
        self.iou_threshold = float(iou_threshold)
        self.policy: torch.nn.Module | None = None
        self.ref_policy: torch.nn.Module | None = None
        self.processor: Any = None
        self.rollout_engine: Any = None  # set by RolloutCallback, else an HF engine on first use
        self.loss = loss if loss is not None else DAPOLoss()
        self.update_settings = UpdateSettings(
            loss=self.loss, temperature=temperature, updates_per_rollout=updates_per_rollout,
            micro_batch_size=micro_batch_size, max_completion_length=max_new_tokens,
            shared_prefix=shared_prefix_update, behaviour_objective=async_objective,
        )
        self.rollout_settings = RolloutSettings(
            group_size=group_size, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
            top_k=top_k, val_max_new_tokens=val_max_new_tokens or max_new_tokens, val_samples=val_samples,
            val_temperature=val_temperature, val_iou_threshold=val_iou_threshold,
            seed=seed if rollout_seed is None else rollout_seed,
        )
        self.counters = RunCounters()
        self.stepper = ClippedStepper(max_grad_norm, self.counters)
        self.sampler = DynamicSampler(max_refill_batches, self.counters) if dynamic_sampling else None
        self.runner = RolloutRunner(self.rollout_settings, partial(
            RewardScorer, num_workers=reward_workers, timeout_s=reward_timeout_s, compat=compat))
        self.async_queue = AsyncRollouts(self.runner, max_staleness) if async_rollouts else None
        self._reporter = StageReporter(stage_reports)
        self._stale_keys: dict[str, set[str]] = {}  # logged groups to forget on steps that do not log them

    # ----- model -------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.policy is not None:
            return
        path = policy_lib.resolve_model_path(self.hparams.model_path)
        dtype = getattr(torch, self.hparams.dtype)
        self.policy = policy_lib.load_policy(path, dtype, self.hparams.attn_implementation).train()
        if self.hparams.gradient_checkpointing:  # non-reentrant: the shared-prefix prompt cache needs autograd inside
            self.policy.gradient_checkpointing_enable({"use_reentrant": False})
        self.processor = policy_lib.load_processor(path)
        self.model_dir = path
        if self.loss.kl_coef:
            self.ref_policy = policy_lib.load_policy(path, dtype, self.hparams.attn_implementation).eval()
            self.ref_policy.requires_grad_(False)
        self._apply_stage_freeze()
        # Under an FSDPStrategy (inside its model_sharded_context) the policy becomes its own FSDP root with
        # the strategy's settings; elsewhere a no-op. Why not Lightning's own wrapping: models/sharding.py.
        from torch.distributed.fsdp.wrap import wrap

        self.policy = wrap(self.policy)

    @property
    def in_warm_start(self) -> bool:
        return self.global_step < self.hparams.warm_start_steps

    def _apply_stage_freeze(self) -> None:
        freeze = self.hparams.warm_start_freeze if self.in_warm_start else self.hparams.freeze
        self._frozen = policy_lib.apply_freeze(self.policy, freeze)
        self._frozen_name = freeze

    def keep_frozen_in_eval(self) -> None:
        """Frozen parts stay in eval mode (no dropout, fixed norms) whenever the policy is put in train mode."""
        for part in self._frozen:
            part.eval()

    @property
    def vision_frozen(self) -> bool:
        return self._frozen_name == "vision"

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        rl_opt = optimizers.rl_optimizer(self._trainable_under(hp.freeze), self.optimizer_factory, lr=hp.lr,
                                         betas=hp.adam_betas, weight_decay=hp.weight_decay)
        # stepped once per RL update (never in the warm-start), so its count is the RL step count
        rl_sched = optimizers.rl_scheduler(rl_opt, self.scheduler_factory, hp.warmup_steps)
        start = hp.warm_start_steps
        if not hp.warm_start_steps:
            return [rl_opt], [rl_sched]
        sft_params = self._trainable_under(hp.warm_start_freeze)
        sft_opt = torch.optim.AdamW(sft_params, lr=hp.warm_start_lr, weight_decay=0.0)
        sft_sched = torch.optim.lr_scheduler.LambdaLR(sft_opt, lambda step: warm_start_lr_scale(step, start))
        return [rl_opt, sft_opt], [rl_sched, sft_sched]

    def _trainable_under(self, freeze: str) -> list[torch.nn.Parameter]:
        """Parameters an optimizer owns under a freeze choice: frozen parts never enter it."""
        frozen = {id(p) for m in policy_lib.frozen_modules(self.policy, freeze) for p in m.parameters()}
        return [p for p in self.policy.parameters() if id(p) not in frozen]

    def _rl_optimization(self) -> tuple[Any, Any]:
        """The RL stage's optimizer and LR scheduler (the first of each)."""
        opts, schedulers = self.optimizers(), self.lr_schedulers()
        return (opts[0] if isinstance(opts, list) else opts,
                schedulers[0] if isinstance(schedulers, list) else schedulers)

    def rollout_context(self) -> RolloutContext:
        """What the rollout runner takes from the module now: the engine (HF generate unless a RolloutCallback
        set one), the policy, the step and the current IoU threshold."""
        if self.rollout_engine is None:
            from lit_triune.rollout.hf_engine import HFGenerateEngine  # noqa: I001

            self.rollout_engine = HFGenerateEngine(self.policy, self.processor)
        return RolloutContext(
            engine=self.rollout_engine, policy=self.policy, processor=self.processor, device=self.device,
            step=self.global_step, rank=self.global_rank, iou_threshold=self.iou_threshold,
            vision_features=self.vision_frozen and self.hparams.cache_vision_features,
        )

    # ----- steps -------------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        for reason, count in (getattr(batch, "skips", None) or {}).items():
            self.counters.bump(f"data_skipped/{reason}", count)
        if self.in_warm_start:
            return self._warm_start_step(batch)
        return self.grpo_step(batch)

    def _warm_start_step(self, batch: Any) -> dict[str, Any]:
        opt = self.optimizers()[1]
        loss, tokens, finite = warm_start_backward(self.policy, self.processor, batch, self.manual_backward,
                                                   self.update_settings.micro_batch_size)
        lr = opt.param_groups[0]["lr"]
        outcome = self.stepper.step(opt, finite, self.device)
        self.lr_schedulers()[1].step()  # per attempted step, as global_step counts
        logged = {"warm_start/loss": loss, "warm_start/grad_norm": outcome.grad_norm, "warm_start/lr": lr,
                  "warm_start/tokens": float(tokens)}
        self.log_dict(logged, batch_size=len(batch.prompts), sync_dist=True)
        self._stale_keys["warm_start"] = set(logged)  # forgotten once RL starts (`_forget`)
        self._log_with_counters(len(batch.prompts))  # data skips and non-finite steps are logged in this stage too
        if self.global_step >= self.hparams.warm_start_steps:
            self._end_warm_start()
        return {"loss": torch.tensor(loss), "rollout": None}  # no rollout: the metric callbacks skip this step

    def _end_warm_start(self) -> None:
        self._apply_stage_freeze()
        self._reporter.report(self, "after_warm_start")

    def grpo_step(self, batch: Any) -> dict[str, Any]:
        """Rollout -> verdict rows -> [dynamic sampling] -> update -> logged figures."""
        hp = self.hparams
        self._forget("warm_start")  # the warm-start's figures end with it
        async_stats: dict[str, float] = {}
        if self.async_queue is not None:  # submit this batch; train on the oldest one in flight
            self.async_queue.submit(batch, self.rollout_context())
            if not self.async_queue.ready():  # the run's first RL step: nothing sampled yet to train on
                self._forget("update")
                self._log_with_counters(len(batch.prompts))
                return {"rollout": None}
            scored, async_stats = self.async_queue.pop(self.global_step)
        else:
            salt = self.sampler.refills if self.sampler is not None else 0
            scored = self.runner.rollout(batch, self.rollout_context(), salt=salt)
        self.counters.bump("train/spurious_vision_tokens", scored.spurious_vision_tokens)
        out: dict[str, Any] = {"rollout": scored.records()}
        valid = training.verdict_rows(scored, hp.verifier_failures)  # [N]
        training.count_verifier_failures(scored, valid, self.counters)
        informative = informative_groups(scored.row_tensor("accuracy"), hp.group_size, valid)  # [B]
        if self.sampler is not None:
            decision = self.sampler.offer(scored, informative, len(batch.prompts), self.device)
        else:
            decision = SamplerDecision(scored)
        if decision.batch is None:  # a refill step, or no signal on any rank: no update on any rank
            self._forget("update")
        else:
            stats = self._update(decision.batch, decision.padding_groups)
            # logged values are global: each rank's figures averaged over the ranks
            logged = training.mean_over_ranks({f"train/{k}": float(v) for k, v in stats.items()})
            self._stale_keys["update"] = set(logged)
            self.log_dict(logged, batch_size=len(batch.prompts))
            out["loss"] = torch.tensor(stats["loss"])
        # After the update, so the counters (refills, skipped steps, ...) include this step's events.
        self._log_with_counters(max(1, len(scored.texts) // scored.group_size),
                                {**training.rollout_metrics(scored, (~informative).float().mean()), **async_stats})
        return out

    def _update(self, scored: Any, padding_groups: int = 0) -> dict[str, float]:
        """One policy update on `scored` (its last `padding_groups` groups only pad the micro-batches)."""
        hp = self.hparams
        t0 = time.perf_counter()
        # The rollout's own encoding (and frozen-ViT features) when the engine took them; else encode here.
        enc = scored.encoded if scored.encoded is not None else encode_prompts(
            self.processor, scored.prompts, scored.images)
        features = None
        if self.vision_frozen and hp.cache_vision_features and enc.pixel_values is not None:
            features = enc.image_features if enc.image_features is not None else frozen_image_features(
                self.policy, enc, self.device)
        batch = training.update_batch(
            scored, enc, policy=self.policy, tokenizer=self.processor.tokenizer, device=self.device,
            valid=training.verdict_rows(scored, hp.verifier_failures), features=features,
            scale_rewards=hp.scale_rewards, overlong_filter=hp.overlong_filter, padding_groups=padding_groups,
            behaviour=self.async_queue is not None)
        rl_opt, rl_sched = self._rl_optimization()

        def step(finite: bool) -> tuple[bool, float]:
            outcome: StepOutcome = self.stepper.step(rl_opt, finite, self.device)
            if outcome.stepped and rl_sched is not None:
                rl_sched.step()
            return outcome.stepped, outcome.grad_norm

        self.policy.train()
        self.keep_frozen_in_eval()
        stats = training.update_policy(batch, policy=self.policy, settings=self.update_settings,
                                       backward=self.manual_backward, step=step, ref_policy=self.ref_policy)
        stats["time/update"] = time.perf_counter() - t0
        stats["lr"] = float(rl_opt.optimizer.param_groups[0]["lr"])
        return stats

    def _log_with_counters(self, batch_size: int, metrics: dict[str, Any] | None = None) -> None:
        """Logs `metrics` (mean over ranks) and the run counters (global totals), one gather; called on every
        training step of every stage, on all ranks alike."""
        parts = gather_objects(({k: float(v) for k, v in (metrics or {}).items()}, self.counters.as_dict()))
        logged = training.mean_over_parts([p[0] for p in parts])
        logged.update(combine_ranks([p[1] for p in parts]))
        self.log_dict(logged, batch_size=batch_size)

    def _forget(self, group: str) -> None:
        """Lightning keeps re-logging a `self.log` key's last value on every later step of the epoch (this
        stream is one long epoch): drop a group of figures on the steps that do not produce them — the
        previous update's on a refill step, the warm-start's once RL runs — so the logs hold each figure
        only at the steps that made it (no public Lightning API: lit_triune/private_api.py);
        `trainer.callback_metrics` keeps the last values."""
        keys = self._stale_keys.pop(group, None)
        if keys and self._trainer is not None:
            forget_logged(self.trainer, keys)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        # inside opt.step(), after the callbacks' hooks: they see the raw gradients (optimizer_step.py)
        self.stepper.clip(optimizer, trainer_fsdp_root(self.trainer))

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return {"rollout": self.runner.evaluate(batch, self.rollout_context())}

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return self.validation_step(batch, batch_idx)

    # ----- hooks -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # Every optimizer step happens inside training_step by design (rollout, then update), so a checkpoint
        # holds the state after the step, which is what resuming needs; Lightning warns about it each save.
        warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")

    @property
    def stages_train_different_parameters(self) -> bool:
        """Whether the warm-start and the RL stage train different parameter sets (e.g. the ViT only in the
        warm-start). DDP fixes the set it reduces when it wraps the model, so such a fit needs DDP's
        unused-parameter detection (`find_unused_parameters=True`); the command line picks that strategy
        (lit_triune/main.py: TriuneCLI.instantiate_trainer)."""
        hp = self.hparams
        return bool(hp.warm_start_steps) and hp.warm_start_freeze != hp.freeze

    def _check_ddp_detects_unused_parameters(self) -> None:
        """Fails at fit start, not at the first RL step (with DDP's own cryptic error), when DDP wrapped the
        model without unused-parameter detection and the stages train different parameters."""
        wrapped = self.trainer.strategy.model
        if (self.stages_train_different_parameters and isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
                and not wrapped.find_unused_parameters and not getattr(wrapped, "static_graph", False)):
            hp = self.hparams
            raise ValueError(
                f"the warm-start (freeze {hp.warm_start_freeze!r}) and RL (freeze {hp.freeze!r}) train different "
                "parameters, which DDP supports only with find_unused_parameters=True: use "
                "strategy='ddp_find_unused_parameters_true' (or DDPStrategy(find_unused_parameters=True)); "
                "the lit-triune command line does this itself for strategy 'ddp' / 'auto'")

    def on_fit_start(self) -> None:
        self._check_ddp_detects_unused_parameters()
        self.runner.start()

    def on_train_start(self) -> None:
        self._apply_stage_freeze()
        if self.global_step == 0:
            self._reporter.report(self, "init")

    def on_train_epoch_start(self) -> None:
        self.keep_frozen_in_eval()

    def on_train_end(self) -> None:
        self._reporter.report(self, "final")
        save_last_at_end(self.trainer)  # `last` = the weights just reported on, with that report inside

    def on_validation_start(self) -> None:
        self.runner.start()

    def teardown(self, stage: str) -> None:
        self.runner.close()
        if self.async_queue is not None:
            self.async_queue.close()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Called on every rank; counters are per rank (data skips, ...), so rank 0's file keeps all of them.
        checkpoint["lit_triune"] = {"iou_threshold": self.iou_threshold, **self.counters.state_dict(),
                                    "stage_reports": self._reporter.saved}  # merged into a resumed run's file
        if self.async_queue is not None:  # every rank's in-flight rollouts (a collective: every rank is here)
            checkpoint["lit_triune"]["async_rollouts"] = gather_objects(self.async_queue.state_dict())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("lit_triune", {})
        self.iou_threshold = float(state.get("iou_threshold", self.iou_threshold))
        world_size = self._trainer.world_size if self._trainer is not None else 1
        self.counters.load_state_dict(state, rank=self.global_rank, world_size=world_size)
        self._reporter.saved = dict(state.get("stage_reports", {}))
        parts = state.get("async_rollouts")
        if self.async_queue is not None and parts:
            if len(parts) == world_size:
                self.async_queue.load_state_dict(parts[self.global_rank])
            else:
                rank_zero_warn(f"the checkpoint holds the in-flight rollouts of {len(parts)} ranks, this run has "
                               f"{world_size}: they are dropped, and the first step only submits again")

    def export_pretrained(self, out_dir: str) -> None:
        """Writes the current policy and its processor with `save_pretrained` (greedy `generation_config`):
        transformers and vLLM load it.
        Under FSDP each rank holds a shard: export a checkpoint instead (`lit-triune-export`, lit_triune/export.py)."""
        if fsdp_root(self.policy) is not None:
            raise RuntimeError("export_pretrained: the policy is sharded (FSDP); export a checkpoint with "
                               "`lit-triune-export <ckpt> <out_dir>` (it consolidates sharded checkpoints)")
        from lit_triune.export import save_pretrained  # greedy generation_config (lit_triune/export.py)

        save_pretrained(self.policy, self.processor, out_dir)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.policy(*args, **kwargs)



_DEFAULTS = {name: p.default for name, p in inspect.signature(TriuneModule.__init__).parameters.items()
             if p.default is not inspect.Parameter.empty}
