"""Hands a generation engine to the LightningModule and keeps the engine's weights in step with training."""

from __future__ import annotations

import time
from typing import Any, Protocol, runtime_checkable

import lightning.pytorch as pl
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from typing_extensions import override

from triune_callbacks._fsdp import full_parameters


@runtime_checkable
class GenerationEngine(Protocol):
    """What this callback needs from an engine (e.g. lit_triune's HF-generate or vLLM engines)."""

    def generate(self, prompts: list[str], images: list[Any], sampling: Any) -> Any: ...

    def sync_weights(self, model: Any) -> None: ...


class RolloutCallback(Callback):
    """Owns the rollout engine's lifecycle on the Trainer's timeline.

    At fit/validate/test start it binds the engine to the module's policy (engines that keep their
    own copy of the weights, like vLLM, get them pushed, which also covers a run resumed from a
    checkpoint) and sets ``pl_module.<attribute>`` so the module generates with it. After every
    ``sync_every_n_steps`` optimizer steps it pushes the new weights, so the next rollout samples from
    the policy that is being trained. Memory hand-off on GPUs (vLLM sleep/wake around generation) is
    the engine's own business, so this callback works with any engine.

    Args:
        engine: Any object with ``generate(prompts, images, sampling)`` and ``sync_weights(model)``;
            optional ``bind(model, processor)`` and ``close()``.
        attribute: Module attribute the engine is assigned to.
        policy_attribute: Module attribute holding the trained ``nn.Module``.
        processor_attribute: Module attribute holding its processor (passed to ``bind``), if any.
        sync_every_n_steps: Push weights after this many optimizer steps (1 = on-policy).

    Raises:
        MisconfigurationException: If the engine lacks ``generate``/``sync_weights``, if
            ``sync_every_n_steps < 1``, or if the module has no ``policy_attribute`` at fit start.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> class Echo:
        ...     def generate(self, prompts, images, sampling): return prompts
        ...     def sync_weights(self, model): pass
        >>> trainer = Trainer(callbacks=[RolloutCallback(Echo())], logger=False)
    """

    def __init__(
        self,
        engine: GenerationEngine,
        attribute: str = "rollout_engine",
        policy_attribute: str = "policy",
        processor_attribute: str | None = "processor",
        sync_every_n_steps: int = 1,
    ) -> None:
        if not isinstance(engine, GenerationEngine):
            raise MisconfigurationException(
                f"engine must have generate(prompts, images, sampling) and sync_weights(model); "
                f"got {type(engine).__name__}"
            )
        if sync_every_n_steps < 1:
            raise MisconfigurationException(f"sync_every_n_steps must be >= 1, got {sync_every_n_steps}")
        self.engine = engine
        self.attribute = attribute
        self.policy_attribute = policy_attribute
        self.processor_attribute = processor_attribute
        self.sync_every_n_steps = sync_every_n_steps
        self._synced_step: int | None = None
        self.last_sync_seconds = 0.0
        self.num_syncs = 0

    def _policy(self, pl_module: pl.LightningModule) -> Any:
        policy = getattr(pl_module, self.policy_attribute, None)
        if policy is None:
            raise MisconfigurationException(
                f"RolloutCallback needs `{type(pl_module).__name__}.{self.policy_attribute}` to be the trained "
                "model once the model is configured; it is missing or None"
            )
        return policy

    def _bind(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        policy = self._policy(pl_module)
        if hasattr(self.engine, "bind"):
            processor = (
                getattr(pl_module, self.processor_attribute, None) if self.processor_attribute else None
            )
            self.engine.bind(policy, processor)
        setattr(pl_module, self.attribute, self.engine)
        self._sync(trainer, pl_module)

    def _sync(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        start = time.perf_counter()
        with full_parameters(trainer):
            self.engine.sync_weights(self._policy(pl_module))
        self.last_sync_seconds = time.perf_counter() - start
        self.num_syncs += 1
        self._synced_step = trainer.global_step

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._bind(trainer, pl_module)

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(pl_module, self.attribute, None) is not self.engine:
            self._bind(trainer, pl_module)
        elif self._synced_step != trainer.global_step:
            self._sync(trainer, pl_module)

    @override
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.on_validation_start(trainer, pl_module)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self._synced_step is not None and step - self._synced_step >= self.sync_every_n_steps:
            self._sync(trainer, pl_module)
            pl_module.log("time/weight_sync", self.last_sync_seconds, batch_size=1)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if hasattr(self.engine, "close"):
            self.engine.close()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"num_syncs": self.num_syncs}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_syncs = state_dict.get("num_syncs", 0)
