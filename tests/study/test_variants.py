"""The study's config edits: each variant changes only what its ablation is about, and the stage configs
take sources, steps and settings from the config they are given (no training here)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lit_triune.data.synthetic import TASKS
from lit_triune.study import configs, layout
from lit_triune.study.variants import (
    PAPER_ABILITY,
    VARIANTS,
    fixed_iou,
    only_ability,
    resolve,
    synthetic_ability,
)
from triune_callbacks import DynamicIoUThreshold

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "conf" / "tiny.yaml"


def _base() -> dict[str, Any]:
    """A config shaped like conf/tiny.yaml, with every synthetic task and a weights entry."""
    return {
        "seed_everything": 0,
        "trainer": {"max_steps": 30, "val_check_interval": 1000000, "check_val_every_n_epoch": None,
                    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                               "init_args": {"save_dir": "runs", "name": "tiny"}},
                    "callbacks": [
                        {"class_path": "triune_callbacks.DynamicIoUThreshold",
                         "init_args": {"start_step": "${model.warm_start_steps}"}},
                        {"class_path": "triune_callbacks.SourceMetrics", "init_args": {"sources": ["synthetic_math"]}},
                        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                         "init_args": {"every_n_train_steps": 100, "save_last": True}},
                    ]},
        "model": {"model_path": "tiny", "freeze": "vision", "updates_per_rollout": 1, "warm_start_steps": 10,
                  "stage_reports": True, "seed": 0},
        "data": {"synthetic": {t: 100 for t in sorted(TASKS)}, "val_synthetic": {t: 8 for t in sorted(TASKS)},
                 "weights": {"synthetic_math": 2.0, "synthetic_ocr": 1.0}},
    }  # fmt: skip


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        return {k: v for key, val in d.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    if isinstance(d, list):
        return {k: v for i, val in enumerate(d) for k, v in _flat(val, f"{prefix}{i}.").items()}
    return {prefix[:-1]: d}


def _changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    a, b = _flat(before), _flat(after)
    return {k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>")}


def test_synthetic_abilities_are_the_papers_grouping() -> None:
    # the task modules group the tasks as the paper does: reasoning = math, chart, puzzle; perception = the rest
    assert {t: synthetic_ability(t) for t in TASKS} == {t: PAPER_ABILITY[t] for t in TASKS}
    assert {t for t in TASKS if synthetic_ability(t) == "reasoning"} == {"math", "chart", "puzzle"}


@pytest.mark.parametrize(("name", "changed"), [
    ("recipe", set()),
    ("freeze_language", {"model.freeze"}),
    ("freeze_none", {"model.freeze"}),
    ("off_policy", {"model.updates_per_rollout"}),
])  # fmt: skip
def test_variant_changes_only_its_setting(name: str, changed: set[str]) -> None:
    base = _base()
    edited = VARIANTS[name].edit(base)
    assert _changed(base, edited) == changed
    assert base == _base()  # the edit is a copy


def test_freeze_values() -> None:
    assert VARIANTS["freeze_language"].edit(_base())["model"]["freeze"] == "language"
    assert VARIANTS["freeze_none"].edit(_base())["model"]["freeze"] == "none"
    assert VARIANTS["off_policy"].edit(_base())["model"]["updates_per_rollout"] == 4


def test_task_mix_restricts_training_only() -> None:
    base = _base()
    reasoning = VARIANTS["reasoning_only"].edit(base)
    perception = VARIANTS["perception_only"].edit(base)
    assert sorted(reasoning["data"]["synthetic"]) == ["chart", "math", "puzzle"]
    assert sorted(perception["data"]["synthetic"]) == ["counting", "detection", "grounding", "ocr"]
    for cfg in (reasoning, perception):  # validation and per-source metrics stay on every source
        assert cfg["data"]["val_synthetic"] == base["data"]["val_synthetic"]
        assert cfg["trainer"]["callbacks"] == base["trainer"]["callbacks"]
        assert _changed(base, cfg) <= {k for k in _flat(base) if k.startswith(("data.synthetic.", "data.weights."))}
    assert reasoning["data"]["weights"] == {"synthetic_math": 2.0}  # a weight naming a dropped source would be an error
    assert perception["data"]["weights"] == {"synthetic_ocr": 1.0}


def test_task_mix_reads_the_tasks_of_the_config() -> None:
    cfg = configs.load(TINY)
    tasks = set(cfg["data"]["synthetic"])
    for ability in ("reasoning", "perception"):
        wanted = {t for t in tasks if synthetic_ability(t) == ability}
        if wanted:
            assert set(only_ability(cfg, ability)["data"]["synthetic"]) == wanted
        else:
            with pytest.raises(ValueError, match=f"no {ability} task"):
                only_ability(cfg, ability)


def test_task_mix_on_real_data_sources_and_errors() -> None:
    cfg = {"data": {"train": {"math": "a", "detection": "b", "chart": "c"}, "weights": None}}
    assert only_ability(cfg, "reasoning")["data"]["train"] == {"math": "a", "chart": "c"}
    assert only_ability(cfg, "perception")["data"]["train"] == {"detection": "b"}
    with pytest.raises(ValueError, match="no reasoning task"):
        only_ability({"data": {"synthetic": {"counting": 5}}}, "reasoning")
    with pytest.raises(ValueError, match="no ability known"):
        only_ability({"data": {"train": {"refcoco_custom": "x"}}}, "reasoning")


@pytest.mark.parametrize("value", [0.5, 0.99])
def test_fixed_iou(value: float) -> None:
    base = _base()
    cfg = VARIANTS[f"iou_fixed_{value}"].edit(base)
    (cb,) = configs.callbacks_named(cfg, "DynamicIoUThreshold")
    assert cb["init_args"]["milestones"] == [] and cb["init_args"]["values"] == [value]
    assert cfg["model"]["iou_threshold"] == value
    schedule = DynamicIoUThreshold(**{k: v for k, v in cb["init_args"].items() if k != "start_step"})
    assert [schedule.value_at(p) for p in (0.0, 0.5, 1.0)] == [value] * 3
    # a config without the callback gets the fixed value through the module
    no_cb = copy.deepcopy(base)
    configs.drop_callbacks(no_cb, "DynamicIoUThreshold")
    assert fixed_iou(no_cb, value)["model"]["iou_threshold"] == value
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        fixed_iou(base, 1.5)


def test_resolve() -> None:
    assert [v.name for v in resolve(["all"])] == list(VARIANTS)
    assert [v.name for v in resolve(["off_policy", "recipe", "off_policy"])] == ["off_policy", "recipe"]
    with pytest.raises(ValueError, match="available: all, recipe"):
        resolve(["frozen_everything"])


def test_warm_start_config(tmp_path: Path) -> None:
    run = tmp_path / "warm_start" / "seed_3"
    cfg = configs.warm_start_config(_base(), run, seed=3, steps=12)
    assert cfg["trainer"]["max_steps"] == 12 and cfg["model"]["warm_start_steps"] == 12
    assert cfg["model"]["stage_reports"] is False
    assert not configs.callbacks_named(cfg, "DynamicIoUThreshold")  # no RL step to schedule over
    assert cfg["seed_everything"] == 3 and cfg["model"]["seed"] == 3
    assert cfg["trainer"]["logger"]["init_args"] == {"save_dir": str(run), "name": "logs", "version": ""}
    (ckpt,) = configs.callbacks_named(cfg, "ModelCheckpoint")
    assert ckpt["init_args"]["dirpath"] == str(run / layout.CHECKPOINTS) and ckpt["init_args"]["save_last"]
    assert 12 % ckpt["init_args"]["every_n_train_steps"] == 0  # the last step writes last.ckpt
    with pytest.raises(ValueError, match="steps > 0"):
        configs.warm_start_config(_base(), run, seed=0, steps=0)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rl_config(tmp_path: Path, variant: str) -> None:
    run, policy = tmp_path / variant / "seed_1", tmp_path / "warm_start" / "seed_1" / "policy"
    cfg = configs.rl_config(VARIANTS[variant].edit(_base()), run, seed=1, policy=policy, steps=20, val_every=5)
    k = 4 if variant == "off_policy" else 1
    assert cfg["model"]["model_path"] == str(policy) and cfg["model"]["warm_start_steps"] == 0
    assert cfg["model"]["stage_reports"] is True
    assert cfg["trainer"]["max_steps"] == 20 * k  # the same number of rollout batches for every variant
    assert cfg["trainer"]["val_check_interval"] == 5 and cfg["trainer"]["check_val_every_n_epoch"] is None
    for cb in configs.callbacks_named(cfg, "DynamicIoUThreshold"):
        assert cb["init_args"]["start_step"] == 0
    (ckpt,) = configs.callbacks_named(cfg, "ModelCheckpoint")
    every = ckpt["init_args"]["every_n_train_steps"]
    assert every % k == 0 and (20 * k) % every == 0 and every <= 5 * k


def test_written_configs_parse_with_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the runner writes is a LightningCLI fit config (conf/tiny.yaml through every variant)."""
    import sys

    from lit_triune.main import cli_main

    monkeypatch.setattr(sys, "argv", ["lit-triune"])
    base = configs.load(TINY)
    policy = tmp_path / "policy"
    written = [configs.write(configs.warm_start_config(base, tmp_path / "ws", 0, 5), tmp_path / "ws.yaml")]
    for name, variant in VARIANTS.items():
        try:
            edited = variant.edit(base)
        except ValueError:  # a task-mix variant on a config without that kind of task
            continue
        written.append(configs.write(configs.rl_config(edited, tmp_path / name, 0, policy, 10, 5),
                                     tmp_path / f"{name}.yaml"))
    for path in written:
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["fit", "-c", str(path), "--print_config"])
        assert exit_info.value.code in (0, None), path


def test_overrides_and_cadence() -> None:
    cfg = configs.apply_overrides(_base(), ["model.max_new_tokens=8", "data.val_synthetic.ocr=4",
                                            "trainer.callbacks.1.init_args.log_every_n_steps=2", "model.lr=1.0e-3"])
    assert cfg["model"]["max_new_tokens"] == 8 and cfg["data"]["val_synthetic"]["ocr"] == 4
    assert cfg["trainer"]["callbacks"][1]["init_args"]["log_every_n_steps"] == 2 and cfg["model"]["lr"] == 1e-3
    with pytest.raises(ValueError, match="KEY=VALUE"):
        configs.apply_overrides(_base(), ["model.lr"])
    assert [configs.cadence(t, p) for t, p in ((250, 100), (150, 100), (4, 100), (7, 3), (12, 5))] == [50, 75, 4, 1, 4]
    assert configs.rl_steps(_base()) == 20 and configs.warm_start_steps(_base()) == 10


def test_the_base_configs_tensorboard_logger_class_is_kept(tmp_path: Path) -> None:
    base = _base()
    base["trainer"]["logger"]["class_path"] = "lit_triune.loggers.TriuneTensorBoardLogger"
    cfg = configs.warm_start_config(base, tmp_path / "run", seed=0, steps=4)
    assert cfg["trainer"]["logger"]["class_path"] == "lit_triune.loggers.TriuneTensorBoardLogger"
    base["trainer"]["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger"}  # figures need TensorBoard
    cfg = configs.warm_start_config(base, tmp_path / "run", seed=0, steps=4)
    assert cfg["trainer"]["logger"]["class_path"] == "lightning.pytorch.loggers.TensorBoardLogger"
