"""The private Lightning and transformers names lit_triune relies on, all here, each checked.

Only what no public API does is here; tests/test_private_api.py fails when an installed version no longer
has a name (or it no longer behaves as used), so an upgrade breaks a test, not a run.

- `forget_logged` (Lightning): drop figures logged with `self.log` so later steps do not re-log their
  last value. Lightning keeps every logged key's latest value in the running loop's result collection
  (`trainer._results`, entries keyed "<hook>.<name>") and logs it again on every later step of the
  epoch; there is no public way to un-log a key.
- `save_last_at_end` (Lightning): ModelCheckpoint updates `last` only when its cadence saves, and says which
  step it saved last only in `_last_global_step_saved`; writing `last` the way it does (its name, its
  `save_last="link"` mode, `last_model_path`) is `_save_last_checkpoint`. No public call does either.
- `keep_cache_under_checkpointing` (transformers): HF's checkpointed layers
  (`GradientCheckpointingLayer`) drop `past_key_values` unless the layer class says it may keep it
  (`_can_checkpoint_with_cache`); there is no public switch.

Versions these were checked against: lightning 2.6, transformers 5.16-5.19 (the pins in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

LIGHTNING_CHECKED = ((2, 6), (2, 7))  # [from, to) major.minor
TRANSFORMERS_CHECKED = ((5, 16), (5, 20))


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = (version.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _in_range(version: str, checked: tuple[tuple[int, int], tuple[int, int]]) -> bool:
    return checked[0] <= _major_minor(version) < checked[1]


def lightning_checked() -> bool:
    import lightning

    return _in_range(lightning.__version__, LIGHTNING_CHECKED)


def transformers_checked() -> bool:
    import transformers

    return _in_range(transformers.__version__, TRANSFORMERS_CHECKED)


# ----- Lightning: un-log figures -------------------------------------------------------------------
def logged_results(trainer: Any) -> Any:
    """The running loop's result collection (a dict of "<hook>.<name>" -> result with `reset()`), None
    when no loop runs. Raises AttributeError when this Lightning has no `Trainer._results`."""
    if not hasattr(type(trainer), "_results"):
        raise AttributeError(f"{type(trainer).__name__} has no `_results` (Lightning changed): "
                             "lit_triune/private_api.py:forget_logged needs updating")
    return trainer._results


def forget_logged(trainer: Any, names: Iterable[str]) -> int:
    """Stops Lightning from re-logging the `self.log` keys `names` (their last values) on later steps;
    `trainer.callback_metrics` keeps them. Returns how many entries were reset. Outside a running loop a
    no-op; on a Lightning without the private collection a one-time warning and a no-op (figures are then
    re-logged as Lightning does by default)."""
    names = set(names)
    if not names:
        return 0
    try:
        results = logged_results(trainer)
    except AttributeError as err:
        warnings.warn(f"{err}; stale figures will be re-logged", stacklevel=2)
        return 0
    if results is None:
        return 0
    reset = 0
    for key, metric in results.items():
        if key.split(".", 1)[-1] in names and hasattr(metric, "reset"):  # key: "<hook>.<name>"
            metric.reset()
            reset += 1
    return reset


# ----- Lightning: `last` holds the weights the run ended with ------------------------------------------
def save_last_at_end(trainer: Any) -> list[str]:
    """At the end of fit: every ModelCheckpoint with `save_last` whose newest save is not of this step writes
    `last` now. Its cadence alone leaves `last` behind the final weights whenever `max_steps` is not a multiple
    of `every_n_train_steps` (conf/tiny.yaml: 460 steps, a save every 100 -- `last.ckpt` was step 400, and an
    export or evaluation of it was not the model the final report scored). Call on every rank (FSDP saves
    collectively). Returns the paths written. Raises when Lightning no longer has the private names."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    written = []
    for cb in trainer.checkpoint_callbacks:
        if not isinstance(cb, ModelCheckpoint) or not cb.save_last:
            continue
        if not (hasattr(cb, "_last_global_step_saved") and hasattr(cb, "_save_last_checkpoint")):
            raise AttributeError("ModelCheckpoint has no `_last_global_step_saved` / `_save_last_checkpoint` "
                                 "(Lightning changed): lit_triune/private_api.py:save_last_at_end needs updating")
        if cb._last_global_step_saved == trainer.global_step:
            continue
        cb._save_last_checkpoint(trainer, cb._monitor_candidates(trainer))
        written.append(cb.last_model_path)
    return written


# ----- transformers: keep a KV cache through checkpointed layers ------------------------------------
_CACHE_FLAG = "_can_checkpoint_with_cache"


def checkpointing_layer_class() -> type:
    """transformers' base class of layers that checkpoint themselves (and drop caches while doing so)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return GradientCheckpointingLayer


@contextlib.contextmanager
def keep_cache_under_checkpointing(model: Any) -> Iterator[None]:
    """For the duration, HF's checkpointed layers in `model` keep the `past_key_values` they are given.

    Only for replay-safe caches (lit_triune/models/kv_cache.py: a layer's replay in backward writes and
    reads the same states). A no-op when no layer checkpoints; raises when some do and this transformers
    no longer has the switch, since the cache would be dropped silently."""
    layers = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True
              and hasattr(type(m), _CACHE_FLAG)]
    if not layers and any(getattr(m, "gradient_checkpointing", False) is True
                          and isinstance(m, checkpointing_layer_class()) for m in model.modules()):
        raise RuntimeError(f"transformers' GradientCheckpointingLayer has no `{_CACHE_FLAG}` any more: "
                           "lit_triune/private_api.py:keep_cache_under_checkpointing needs updating")
    for m in layers:
        setattr(m, _CACHE_FLAG, True)  # an instance attribute over the class's False
    try:
        yield
    finally:
        for m in layers:
            m.__dict__.pop(_CACHE_FLAG, None)
