"""The paper's ablations (arXiv 2505.18129) as pure edits of a config dict.

Each variant changes only what its ablation is about; everything else is the base config's. The
recipe is the base config as is (ViT frozen, all tasks, on-policy, dynamic IoU threshold).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lit_triune.study import configs

ABILITIES = ("reasoning", "perception")
# The paper's grouping of its eight tasks, for `data.train` sources named after them (Orsta-Data-47k).
# Synthetic tasks are grouped by the module that draws them (lit_triune/data/synthetic/{reasoning,perception}.py).
PAPER_ABILITY = {"math": "reasoning", "puzzle": "reasoning", "science": "reasoning", "chart": "reasoning",
                 "detection": "perception", "grounding": "perception", "counting": "perception",
                 "ocr": "perception"}  # fmt: skip
OFF_POLICY_UPDATES = 4  # conf/ablations/off_policy.yaml: the rollout batch split into 4 minibatch updates


def synthetic_ability(task: str) -> str:
    """`reasoning` or `perception`: the synthetic task's own module says which."""
    from lit_triune.data.synthetic import TASKS

    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; available: {sorted(TASKS)}")
    ability = TASKS[task].__module__.rsplit(".", 1)[-1]
    if ability not in ABILITIES:
        raise ValueError(f"synthetic task {task!r} is drawn in {TASKS[task].__module__}, which is neither of {ABILITIES}")
    return ability


def source_ability(name: str) -> str:
    """The ability of a `data.train` source named after one of the paper's tasks."""
    if name not in PAPER_ABILITY:
        raise ValueError(f"data.train source {name!r}: no ability known for it; the task-mix variants know "
                         f"{sorted(PAPER_ABILITY)}")
    return PAPER_ABILITY[name]


def only_ability(cfg: dict[str, Any], ability: str) -> dict[str, Any]:
    """Training data restricted to one ability (data.synthetic and data.train); validation unchanged."""
    if ability not in ABILITIES:
        raise ValueError(f"ability must be one of {ABILITIES}, got {ability!r}")
    cfg = copy.deepcopy(cfg)
    kept: list[str] = []
    synthetic = configs.get(cfg, "data.synthetic") or {}
    if synthetic:
        new = {t: n for t, n in synthetic.items() if synthetic_ability(t) == ability}
        configs.put(cfg, "data.synthetic", new or None)
        kept += [f"synthetic_{t}" for t in new]
    train = configs.get(cfg, "data.train") or {}
    if train:
        new = {s: p for s, p in train.items() if source_ability(s) == ability}
        configs.put(cfg, "data.train", new or None)
        kept += list(new)
    if not kept:
        raise ValueError(f"{ability}_only: the config trains on no {ability} task (data.synthetic "
                         f"{sorted(synthetic)}, data.train {sorted(train)})")
    weights = configs.get(cfg, "data.weights")
    if weights:  # weights naming a dropped source would be an error
        configs.put(cfg, "data.weights", {s: w for s, w in weights.items() if s in kept} or None)
    return cfg


def trainable(cfg: dict[str, Any], freeze: str) -> dict[str, Any]:
    """What the RL stage freezes (`vision` is the recipe; `language`, `none`)."""
    cfg = copy.deepcopy(cfg)
    configs.put(cfg, "model.freeze", freeze)
    return cfg


def off_policy(cfg: dict[str, Any], updates: int = OFF_POLICY_UPDATES) -> dict[str, Any]:
    """k minibatch updates per rollout batch; the RL config keeps the number of rollout batches."""
    cfg = copy.deepcopy(cfg)
    configs.put(cfg, "model.updates_per_rollout", updates)
    return cfg


def fixed_iou(cfg: dict[str, Any], value: float) -> dict[str, Any]:
    """One IoU threshold for the whole run: the DynamicIoUThreshold callback keeps a single stage (so the
    value is still logged), and model.iou_threshold holds it for a config without the callback."""
    if not 0.0 < value <= 1.0:
        raise ValueError(f"an IoU threshold lies in (0, 1], got {value}")
    cfg = copy.deepcopy(cfg)
    for cb in configs.callbacks_named(cfg, "DynamicIoUThreshold"):
        configs.init_args(cb).update(milestones=[], values=[value])
    configs.put(cfg, "model.iou_threshold", value)
    return cfg


@dataclass(frozen=True)
class Variant:
    name: str
    ablation: str  # the paper's study it belongs to
    summary: str
    edit: Callable[[dict[str, Any]], dict[str, Any]]


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("recipe", "-", "the config as is: ViT frozen, all tasks, on-policy, dynamic IoU", copy.deepcopy),
    Variant("freeze_language", "trainable parts", "LLM frozen, ViT trained", lambda c: trainable(c, "language")),
    Variant("freeze_none", "trainable parts", "ViT and LLM trained", lambda c: trainable(c, "none")),
    Variant("reasoning_only", "task mix", "train on reasoning tasks only", lambda c: only_ability(c, "reasoning")),
    Variant("perception_only", "task mix", "train on perception tasks only", lambda c: only_ability(c, "perception")),
    Variant("off_policy", "on/off-policy", f"{OFF_POLICY_UPDATES} updates per rollout batch", off_policy),
    Variant("iou_fixed_0.5", "IoU threshold", "IoU threshold 0.5 throughout", lambda c: fixed_iou(c, 0.5)),
    Variant("iou_fixed_0.99", "IoU threshold", "IoU threshold 0.99 throughout", lambda c: fixed_iou(c, 0.99)),
)}  # fmt: skip


def resolve(names: list[str]) -> list[Variant]:
    """Variant names (or `all`) -> variants, in the order given (`all`: the order above)."""
    out: list[Variant] = []
    for name in names:
        if name == "all":
            out += [v for v in VARIANTS.values() if v not in out]
        elif name in VARIANTS:
            if VARIANTS[name] not in out:
                out.append(VARIANTS[name])
        else:
            raise ValueError(f"unknown variant {name!r}; available: all, {', '.join(VARIANTS)}")
    return out
