from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from cb_records import SOURCES, make_record
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from memory_logger import MemoryLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from triune_callbacks import SourceMetrics, SourceStats
from triune_callbacks.source_metrics import reflection_pattern

STATS = [
    "reward", "accuracy", "format", "response_length", "response_length_correct", "response_length_wrong",
    "truncation_ratio", "reflection_ratio", "accuracy_reflection", "accuracy_no_reflection", "iou", "map",
    "iou@0.5", "verifier_failure_ratio", "samples",
]  # fmt: skip
ROWS = [*SOURCES, "other", "all"]


class RolloutModel(BoringModel):
    """Returns a scripted record (batch_idx-seeded, 16 samples) from training and validation steps."""

    def __init__(self, n: int = 16) -> None:
        super().__init__()
        self.n = n
        self.train_samples: list[list[dict[str, Any]]] = []
        self.val_samples: list[dict[str, Any]] = []

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        out = super().training_step(batch, batch_idx)
        record, samples = make_record(seed=batch_idx, n=self.n)
        self.train_samples.append(samples)
        return {"loss": out["loss"], "rollout": record}

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        record, samples = make_record(seed=1000 + batch_idx, n=self.n)
        if not self.trainer.sanity_checking:
            self.val_samples.extend(samples)
        return {"rollout": record}


def _fit(
    tmp_path: Path, callbacks: list[Any], logger: Any, model_cls: type = RolloutModel, **kwargs: Any
) -> tuple[Trainer, RolloutModel]:
    model = model_cls()
    trainer = Trainer(
        default_root_dir=tmp_path,
        callbacks=callbacks,
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )
    trainer.fit(model)
    return trainer, model


def _assert_matches(
    logged: dict[str, float], samples: list[dict[str, Any]], prefix: str, reference: Any
) -> None:
    checked = 0
    for stat in STATS:
        for row in ROWS:
            expected = reference(samples, stat, row, SOURCES)
            key = f"{prefix}/{stat}/{row}"
            if math.isnan(expected):
                assert key not in logged, key
            else:
                assert logged[key] == pytest.approx(expected, rel=1e-5, abs=1e-5), key
                checked += 1
    assert checked > 60


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sources": []}, r"non-empty list of distinct names, got \[\]"),
        ({"sources": ["a", "a"]}, "distinct"),
        ({"sources": ["a", "all"]}, r"'other' and 'all' are reserved; got \['all'\]"),
        ({"sources": ["coco/val"]}, "without '/'"),
        ({"sources": ["a"], "output_key": ""}, "output_key"),
        ({"sources": ["a"], "log_prefix_train": "train/"}, "trailing '/', got 'train/'"),
        ({"sources": ["a"], "log_every_n_steps": 0}, r"log_every_n_steps.*>= 1, got 0"),
        ({"sources": ["a"], "reflection_words": ["wait", " "]}, "reflection_words"),
        ({"sources": ["a"], "correct_threshold": 2.0}, r"correct_threshold.*\[0, 1\], got 2.0"),
        ({"sources": ["a"], "iou_thresholds": [0.5, 0.0]}, r"iou_thresholds.*\(0, 1\], got \[0.5, 0.0\]"),
    ],
)
def test_rejects_bad_args(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        SourceMetrics(**kwargs)


@pytest.mark.parametrize(
    ("text", "reflects"),
    [
        ("Wait, that is wrong.", True),
        ("let me RE-EXAMINE", True),
        ("I will check   again", True),
        ("think\nagain", True),
        ("we verify it", True),
        ("not yet.", True),
        ("(rethink)", True),
        ("await", False),
        ("waiting", False),
        ("verified", False),
        ("a pre-check", False),
        ("yeti", False),
        ("wait-list", False),
        ("", False),
    ],
)
def test_reflection_words_match_whole_words_case_insensitively(text: str, reflects: bool) -> None:
    from triune_callbacks.source_metrics import DEFAULT_REFLECTION_WORDS

    assert bool(reflection_pattern(DEFAULT_REFLECTION_WORDS).search(text)) is reflects


def test_source_stats_ignores_nan_and_buckets_unknown_sources() -> None:
    stats = SourceStats(["a", "b"], ["x", "y"])
    values = torch.tensor([[1.0, float("nan")], [3.0, 4.0], [5.0, 6.0], [7.0, float("nan")]])  # [N=4, C=2]
    stats.update(values, stats.source_index(["a", "a", "zzz", "b"]))
    out = stats.compute()
    assert stats.row_names == ["a", "b", "other", "all"]
    torch.testing.assert_close(out["count"], torch.tensor([[2.0, 1.0], [1.0, 0.0], [1.0, 1.0], [4.0, 2.0]]))
    expected = torch.tensor([[2.0, 4.0], [7.0, math.nan], [5.0, 6.0], [4.0, 5.0]])
    torch.testing.assert_close(out["mean"], expected, equal_nan=True)
    with pytest.raises(ValueError, match="reserved"):
        SourceStats(["other"], ["x"])


def test_train_windows_and_val_epoch_match_reference(
    tmp_path: Path, memory_logger: Any, reference: Any
) -> None:
    cb = SourceMetrics(sources=SOURCES, log_every_n_steps=3)
    trainer, model = _fit(
        tmp_path,
        [cb],
        memory_logger,
        max_steps=7,
        limit_val_batches=3,
        val_check_interval=7,
        log_every_n_steps=1,
    )
    history = memory_logger.history
    # windows of 3 batches logged at the step of their last batch; the partial last window at train end
    assert [s for s, _ in history["train/reward/all"]] == [2, 5, 6]
    windows = {2: model.train_samples[0:3], 5: model.train_samples[3:6], 6: model.train_samples[6:7]}
    for step, window in windows.items():
        logged = {k: dict(v)[step] for k, v in history.items() if k.startswith("train/") and step in dict(v)}
        _assert_matches(logged, [s for batch in window for s in batch], "train", reference)
    # validation: one value per key for the epoch (sanity check discarded), also in callback_metrics
    val_logged = {k: v[-1][1] for k, v in history.items() if k.startswith("val/")}
    assert all(len(history[k]) == 1 for k in val_logged)
    assert len(model.val_samples) == 48
    _assert_matches(val_logged, model.val_samples, "val", reference)
    assert trainer.callback_metrics["val/accuracy/all"].item() == pytest.approx(
        val_logged["val/accuracy/all"]
    )
    assert cb.last_logged["val"] == pytest.approx(val_logged)


def test_follows_trainer_log_every_n_steps_by_default(tmp_path: Path, memory_logger: Any) -> None:
    _fit(
        tmp_path,
        [SourceMetrics(sources=SOURCES)],
        memory_logger,
        max_steps=4,
        limit_val_batches=0,
        log_every_n_steps=2,
    )
    assert [s for s, _ in memory_logger.history["train/samples/all"]] == [1, 3]
    assert [v for _, v in memory_logger.history["train/samples/all"]] == [32.0, 32.0]


def test_missing_record_is_a_clear_error(tmp_path: Path) -> None:
    class NoRecord(RolloutModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return BoringModel.training_step(self, batch, batch_idx)

    with pytest.raises(
        MisconfigurationException, match=r"training_step to return a dict whose 'rollout'.*\['loss'\]"
    ):
        model = NoRecord()
        Trainer(max_steps=1, callbacks=[SourceMetrics(["a"])], logger=False, enable_progress_bar=False).fit(
            model
        )


def test_record_length_mismatch_is_a_clear_error() -> None:
    record, _ = make_record(0, 4)
    record["iou"] = torch.zeros(3)
    with pytest.raises(MisconfigurationException, match="'iou' has 3 entries but 'data_source' has 4"):
        SourceMetrics(SOURCES).values_from_record(record)


def test_optional_keys_may_be_missing_and_stages_disabled(tmp_path: Path, memory_logger: Any) -> None:
    class Minimal(RolloutModel):
        def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            out = BoringModel.training_step(self, batch, batch_idx)
            return {"loss": out["loss"], "traj": {"data_source": ["math", "det"], "reward": [1.0, 0.0]}}

    cb = SourceMetrics(SOURCES, output_key="traj", log_prefix_val=None, log_every_n_steps=1)
    _fit(
        tmp_path, [cb], memory_logger, Minimal, max_steps=2, limit_val_batches=2
    )  # val returns another key: skipped
    assert set(memory_logger.history) == {
        "train/reward/math", "train/reward/det", "train/reward/all",
        "train/samples/math", "train/samples/det", "train/samples/all",
    }  # fmt: skip


def test_tensorboard_event_file_has_the_tags(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="run")
    _fit(
        tmp_path,
        [SourceMetrics(SOURCES, log_every_n_steps=2)],
        logger,
        max_steps=4,
        limit_val_batches=2,
        val_check_interval=4,
    )
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ["train/reward/all", "train/accuracy/math", "train/iou/det", "train/map/det", "train/samples/other",
                "train/reflection_ratio/all", "train/response_length_correct/all", "val/reward/ground", "val/iou@0.5/all"]:  # fmt: skip
        assert tag in tags, (tag, sorted(tags))
    assert "train/map/math" not in tags  # never applicable: never logged
    assert [e.step for e in acc.Scalars("train/reward/all")] == [1, 3]


def _resume_trainer(tmp_path: Path, max_steps: int, callbacks: list[Any], logger: Any) -> Trainer:
    return Trainer(
        default_root_dir=tmp_path,
        callbacks=callbacks,
        logger=logger,
        max_steps=max_steps,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _train_logs(history: dict[str, list[tuple[int, float]]], steps: set[int]) -> dict[tuple[str, int], float]:
    return {(k, s): v for k, pts in history.items() if k.startswith("train/") for s, v in pts if s in steps}


def test_resume_mid_window_logs_what_an_uninterrupted_run_logs(tmp_path: Path, reference: Any) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    # uninterrupted: windows of 4 batches at steps 3 and 7, the partial last window (8, 9) at 9
    full_logger = MemoryLogger()
    full = RolloutModel()
    _resume_trainer(tmp_path / "full", 10, [SourceMetrics(SOURCES, log_every_n_steps=4)], full_logger).fit(
        full
    )
    assert [s for s, _ in full_logger.history["train/reward/all"]] == [3, 7, 9]

    # stopped after 6 batches, checkpoint mid-window (batches 4 and 5 open), then resumed to 10
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=6, save_top_k=-1, filename="{step}")
    cb = SourceMetrics(SOURCES, log_every_n_steps=4)
    _resume_trainer(tmp_path / "a", 6, [cb, ckpt], MemoryLogger()).fit(RolloutModel())
    path = tmp_path / "ckpt" / "step=6.ckpt"
    state = torch.load(path, weights_only=True)["callbacks"][cb.state_key]
    assert state["pending_batches"] == 2
    assert state["train_window"][..., 1].sum().item() > 0  # sums and counts of batches 4 and 5

    resumed_logger = MemoryLogger()
    resumed = RolloutModel()
    _resume_trainer(tmp_path / "b", 10, [SourceMetrics(SOURCES, log_every_n_steps=4)], resumed_logger).fit(
        resumed, ckpt_path=path
    )
    assert [s for s, _ in resumed_logger.history["train/reward/all"]] == [7, 9]
    expected = _train_logs(full_logger.history, {7, 9})
    assert _train_logs(resumed_logger.history, {7, 9}) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert resumed_logger.history["train/samples/all"] == [(7, 64.0), (9, 32.0)]
    window = [s for batch in full.train_samples[4:8] for s in batch]
    _assert_matches({k: v for (k, s), v in expected.items() if s == 7}, window, "train", reference)

    # a checkpoint without the state (written before it existed) still loads: the window starts empty
    old = torch.load(path, weights_only=True)
    del old["callbacks"][cb.state_key]
    torch.save(old, tmp_path / "old.ckpt")
    old_logger = MemoryLogger()
    _resume_trainer(tmp_path / "c", 8, [SourceMetrics(SOURCES, log_every_n_steps=4)], old_logger).fit(
        RolloutModel(), ckpt_path=tmp_path / "old.ckpt"
    )
    assert old_logger.history["train/samples/all"] == [(7, 32.0)]  # batches 6 and 7 only

    # a changed source list warns and starts an empty window
    changed_logger = MemoryLogger()
    with pytest.warns(UserWarning, match="open training window has sources"):
        _resume_trainer(
            tmp_path / "d", 8, [SourceMetrics(SOURCES[:2], log_every_n_steps=4)], changed_logger
        ).fit(RolloutModel(), ckpt_path=path)
    assert changed_logger.history["train/samples/all"] == [(7, 32.0)]


def test_state_dict_is_empty_without_training_metrics() -> None:
    assert SourceMetrics(SOURCES, log_prefix_train=None).state_dict() == {}
    cb = SourceMetrics(SOURCES)
    state = cb.state_dict()
    assert state["pending_batches"] == 0
    assert state["train_window"].shape == (len(SOURCES) + 1, len(cb.columns), 2)


def test_resume_from_a_validation_end_checkpoint(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(root: Path, max_steps: int, callbacks: list[Any], ckpt_path: Path | None = None) -> MemoryLogger:
        logger = MemoryLogger()
        Trainer(
            default_root_dir=root,
            callbacks=[SourceMetrics(SOURCES, log_every_n_steps=4, log_prefix_val=None), *callbacks],
            logger=logger,
            max_steps=max_steps,
            limit_val_batches=1,
            val_check_interval=6,
            num_sanity_val_steps=0,
            enable_progress_bar=False,
            enable_model_summary=False,
        ).fit(RolloutModel(), ckpt_path=ckpt_path)
        return logger

    full = fit(tmp_path / "full", 10, [])
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, filename="{step}")  # saves at val end
    fit(tmp_path / "a", 6, [ckpt])
    resumed = fit(tmp_path / "b", 10, [], ckpt_path=tmp_path / "ckpt" / "step=6.ckpt")
    assert resumed.history["train/samples/all"] == [(7, 64.0), (9, 32.0)]
    expected = _train_logs(full.history, {7, 9})
    assert _train_logs(resumed.history, {7, 9}) == pytest.approx(expected, rel=1e-6, abs=1e-6)


class _NamedSources(BoringDataModule):
    """Any LightningDataModule with a `source_names` list (duck-typed: nothing from lit_triune)."""

    source_names = ["math", "det"]


def test_sources_from_the_datamodule_when_not_given(tmp_path: Path, memory_logger: Any) -> None:
    cb = SourceMetrics(log_every_n_steps=2)
    trainer = Trainer(default_root_dir=tmp_path, callbacks=[cb], logger=memory_logger, max_steps=2,
                      limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False)
    trainer.fit(RolloutModel(), datamodule=_NamedSources())
    assert cb.sources == ["math", "det"]
    assert "train/samples/math" in memory_logger.history and "train/samples/det" in memory_logger.history
    assert "train/samples/other" in memory_logger.history  # make_record's "ground" is not a datamodule source


def test_no_sources_and_no_datamodule_names_is_a_clear_error(tmp_path: Path) -> None:
    trainer = Trainer(default_root_dir=tmp_path, callbacks=[SourceMetrics()], logger=False, max_steps=1,
                      enable_progress_bar=False, enable_checkpointing=False)
    with pytest.raises(MisconfigurationException, match=r"trainer.datamodule.source_names.*pass `sources=\[...\]`"):
        trainer.fit(RolloutModel(), datamodule=BoringDataModule())
