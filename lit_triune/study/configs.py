"""The config of each stage of a study run, made by editing the base config's dict (never by hand).

Every value the study does not own — sources, model, learning rates, callbacks' settings — is read
from the base config it is given, so the study follows the config as it is re-tuned. What the study
owns: the seed, the step counts, where outputs go, the checkpoint cadence (so a run can resume) and
periodic validation in the RL stage.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from lit_triune.study import layout

DEFAULT_CHECKPOINT_EVERY = 100  # ModelCheckpoint's cadence when the base config names none


def load(path: str | Path) -> dict[str, Any]:
    cfg = yaml.safe_load(Path(path).read_text())
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a YAML mapping (a LightningCLI fit config), got {type(cfg).__name__}")
    return cfg


def write(cfg: dict[str, Any], path: Path, header: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=110)
    path.write_text("".join(f"# {line}\n" for line in header.splitlines()) + text)
    return path


def dumps(cfg: dict[str, Any]) -> str:
    """The text a config is compared by: two runs with the same text are the same run."""
    return yaml.safe_dump(cfg, sort_keys=True, default_flow_style=False)


# ----- dotted paths ------------------------------------------------------------------------------
def get(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if isinstance(node, list) and part.lstrip("-").isdigit():
            node = node[int(part)] if -len(node) <= int(part) < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
        if node is None:
            return default
    return node


def put(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Sets `a.b.c` (list entries by index: `trainer.callbacks.0.init_args.x`), creating missing dicts."""
    *parents, last = dotted.split(".")
    node: Any = cfg
    for part in parents:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`["model.max_new_tokens=8", "data.val_synthetic.ocr=4"]` -> a copy with those values (YAML-parsed)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"an override is KEY=VALUE with a dotted KEY (e.g. model.max_new_tokens=8), got {item!r}")
        put(cfg, key.strip(), yaml.safe_load(raw))
    return cfg


# ----- callbacks ---------------------------------------------------------------------------------
def callbacks_named(cfg: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The trainer.callbacks entries whose class is `name` (`triune_callbacks.DynamicIoUThreshold` or a bare name)."""
    out = []
    for cb in get(cfg, "trainer.callbacks", []) or []:
        path = cb.get("class_path", "") if isinstance(cb, dict) else ""
        if path == name or path.rsplit(".", 1)[-1] == name:
            out.append(cb)
    return out


def drop_callbacks(cfg: dict[str, Any], name: str) -> None:
    keep = [cb for cb in get(cfg, "trainer.callbacks", []) or [] if cb not in callbacks_named(cfg, name)]
    put(cfg, "trainer.callbacks", keep)


def init_args(cb: dict[str, Any]) -> dict[str, Any]:
    if cb.get("init_args") is None:
        cb["init_args"] = {}
    return cb["init_args"]


# ----- steps -------------------------------------------------------------------------------------
def warm_start_steps(cfg: dict[str, Any]) -> int:
    return int(get(cfg, "model.warm_start_steps", 0) or 0)


def rl_steps(cfg: dict[str, Any]) -> int:
    """RL rollout batches of the base config's two-stage run: trainer.max_steps - model.warm_start_steps."""
    total = get(cfg, "trainer.max_steps")
    if total is None or int(total) <= 0:
        raise ValueError("the config has no positive trainer.max_steps; pass --rl-steps")
    return int(total) - warm_start_steps(cfg)


def updates_per_rollout(cfg: dict[str, Any]) -> int:
    return int(get(cfg, "model.updates_per_rollout", 1) or 1)


def cadence(total: int, preferred: int) -> int:
    """The largest divisor of `total` that is <= `preferred`, so the last step always writes a checkpoint."""
    for k in range(max(1, min(preferred, total)), 0, -1):
        if total % k == 0:
            return k
    return 1


# ----- the stages --------------------------------------------------------------------------------
TENSORBOARD = "lightning.pytorch.loggers.TensorBoardLogger"


def _tensorboard_class(logger: Any) -> str:
    """The base config's logger class when it is a TensorBoard logger (the study's figures read its event
    files), else Lightning's own."""
    path = logger.get("class_path", "") if isinstance(logger, dict) else ""
    return path if path.endswith("TensorBoardLogger") else TENSORBOARD


def _outputs(cfg: dict[str, Any], run: Path, seed: int, every_n_steps: int) -> None:
    """Seed, log dir and checkpoints of one run (in place)."""
    cfg["seed_everything"] = seed
    put(cfg, "model.seed", seed)
    put(cfg, "trainer.default_root_dir", str(run))
    # a fixed log dir (no version_N): a resumed run keeps writing its events and stage reports there; the
    # base config's TensorBoard logger class is kept (conf/tiny.yaml's drops the hp_metric and epoch tags)
    put(cfg, "trainer.logger", {"class_path": _tensorboard_class(get(cfg, "trainer.logger")),
                                "init_args": {"save_dir": str(run), "name": layout.LOGS, "version": ""}})
    checkpoints = callbacks_named(cfg, "ModelCheckpoint")
    if not checkpoints:
        checkpoints = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint"}]
        put(cfg, "trainer.callbacks", [*(get(cfg, "trainer.callbacks", []) or []), checkpoints[0]])
    for cb in checkpoints:
        args = init_args(cb)
        args.update(dirpath=str(run / layout.CHECKPOINTS), save_last=True, every_n_train_steps=every_n_steps)


def warm_start_config(base: dict[str, Any], run: Path, seed: int, steps: int) -> dict[str, Any]:
    """The supervised stage alone: `steps` warm-start steps and nothing after, no stage reports.

    Callbacks that schedule over RL steps (DynamicIoUThreshold) are dropped: there are none to schedule."""
    if steps <= 0:
        raise ValueError(f"the warm-start stage needs steps > 0, got {steps} (model.warm_start_steps or --warm-start-steps)")
    cfg = copy.deepcopy(base)
    put(cfg, "trainer.max_steps", steps)
    put(cfg, "model.warm_start_steps", steps)
    put(cfg, "model.stage_reports", False)
    drop_callbacks(cfg, "DynamicIoUThreshold")
    preferred = _checkpoint_every(base)
    _outputs(cfg, run, seed, cadence(steps, preferred))
    return cfg


def rl_config(cfg: dict[str, Any], run: Path, seed: int, policy: Path, steps: int, val_every: int) -> dict[str, Any]:
    """The RL stage from an exported policy: `steps` rollout batches (x updates_per_rollout optimizer steps),
    validation every `val_every` batches, the IoU schedule (if any) over these steps alone.

    `cfg` is the base config after the variant's edits."""
    if steps <= 0 or val_every <= 0:
        raise ValueError(f"the RL stage needs steps > 0 and val_every > 0, got {steps}, {val_every}")
    cfg = copy.deepcopy(cfg)
    k = updates_per_rollout(cfg)
    put(cfg, "model.model_path", str(policy))
    put(cfg, "model.warm_start_steps", 0)
    put(cfg, "model.stage_reports", True)  # init (= after warm-start) and final: the table's two columns
    put(cfg, "trainer.max_steps", steps * k)  # global_step counts optimizer steps
    put(cfg, "trainer.val_check_interval", val_every)  # training batches = rollout batches
    put(cfg, "trainer.check_val_every_n_epoch", None)
    for cb in callbacks_named(cfg, "DynamicIoUThreshold"):
        init_args(cb)["start_step"] = 0
    preferred = max(1, min(_checkpoint_every(cfg) // k, val_every))
    _outputs(cfg, run, seed, cadence(steps, preferred) * k)
    return cfg


def _checkpoint_every(cfg: dict[str, Any]) -> int:
    for cb in callbacks_named(cfg, "ModelCheckpoint"):
        every = (cb.get("init_args") or {}).get("every_n_train_steps")
        if every:
            return int(every)
    return DEFAULT_CHECKPOINT_EVERY
