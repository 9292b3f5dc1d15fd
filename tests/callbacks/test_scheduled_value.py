from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from triune_callbacks import DynamicIoUThreshold, ScheduledValue


class ThresholdModel(BoringModel):
    def __init__(self) -> None:
        super().__init__()
        self.iou_threshold = 0.0
        self.reward_ctx = torch.nn.Module()
        self.reward_ctx.temperature = 1.0


class Spy(Callback):
    """Records (global_step, pl_module.iou_threshold) when each batch starts (after the schedule ran)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []
        self.at_train_start: tuple[int, float] | None = None

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        self.at_train_start = (trainer.global_step, pl_module.iou_threshold)

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.seen.append((trainer.global_step, pl_module.iou_threshold))


def _trainer(tmp_path: Any, max_steps: int, callbacks: list[Callback], **kwargs: Any) -> Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return Trainer(
        default_root_dir=tmp_path,
        max_steps=max_steps,
        callbacks=callbacks,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attr": "1bad", "milestones": [], "values": [1.0]}, "attr.*got '1bad'"),
        ({"attr": "a..b", "milestones": [], "values": [1.0]}, "dotted"),
        ({"attr": "x", "milestones": [0.5, 0.2], "values": [1, 2, 3]}, r"strictly increasing.*\[0.5, 0.2\]"),
        ({"attr": "x", "milestones": [0.0], "values": [1, 2]}, r"open interval \(0, 1\)"),
        ({"attr": "x", "milestones": [1.0], "values": [1, 2]}, r"open interval \(0, 1\)"),
        ({"attr": "x", "milestones": [0.5], "values": [1.0]}, r"len\(milestones\) \+ 1 = 2, got 1"),
        ({"attr": "x", "milestones": [0.5], "values": [1.0, float("inf")]}, "finite"),
    ],
)
def test_scheduled_value_rejects_bad_args(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        ScheduledValue(**kwargs)


def test_dynamic_iou_threshold_rejects_thresholds_out_of_range() -> None:
    with pytest.raises(MisconfigurationException, match=r"IoU thresholds must lie in \(0, 1\].*1.5"):
        DynamicIoUThreshold(values=[0.5, 1.0, 1.5])


def test_paper_defaults_and_inclusive_milestones() -> None:
    cb = DynamicIoUThreshold()
    assert (cb.attr, cb.milestones, cb.values, cb.log_key) == (
        "iou_threshold",
        [0.1, 0.25],
        [0.85, 0.95, 0.99],
        "train/iou_threshold",
    )
    # a milestone opens its stage: at exactly 10 % the threshold is already 0.95
    assert [cb.value_at(p) for p in (0.0, 0.0999, 0.1, 0.2, 0.2499, 0.25, 1.0)] == [
        0.85, 0.85, 0.95, 0.95, 0.95, 0.99, 0.99,
    ]  # fmt: skip


def test_threshold_follows_schedule_at_each_step(tmp_path: Any, memory_logger: Any) -> None:
    spy = Spy()
    trainer = _trainer(tmp_path, 20, [DynamicIoUThreshold(), spy], logger=memory_logger, log_every_n_steps=1)
    model = ThresholdModel()
    trainer.fit(model)
    by_step = dict(spy.seen)
    # 20 steps: 10 % is step 2, 25 % is step 5 (inclusive)
    assert [by_step[s] for s in (0, 1, 2, 3, 4, 5, 19)] == [0.85, 0.85, 0.95, 0.95, 0.95, 0.99, 0.99]
    assert spy.at_train_start == (0, 0.85)
    logged = dict(memory_logger.history["train/iou_threshold"])
    assert (
        logged[1] == pytest.approx(0.85)
        and logged[2] == pytest.approx(0.95)
        and logged[5] == pytest.approx(0.99)
    )


def test_logged_at_trainer_cadence_and_at_each_stage_start(tmp_path: Any, memory_logger: Any) -> None:
    trainer = _trainer(tmp_path, 20, [DynamicIoUThreshold()], logger=memory_logger, log_every_n_steps=5)
    trainer.fit(ThresholdModel())
    assert memory_logger.history["train/iou_threshold"] == [
        (0, 0.85), (2, 0.95), (4, 0.95), (5, 0.99), (9, 0.99), (14, 0.99), (19, 0.99),
    ]  # fmt: skip


def test_dotted_attr_and_custom_log_key(tmp_path: Any, memory_logger: Any) -> None:
    cb = ScheduledValue("reward_ctx.temperature", milestones=[0.5], values=[2.0, 0.5], log_key="train/temp")
    trainer = _trainer(tmp_path, 4, [cb], logger=memory_logger, log_every_n_steps=1)
    model = ThresholdModel()
    trainer.fit(model)
    assert model.reward_ctx.temperature == 0.5
    assert [v for _, v in memory_logger.history["train/temp"]] == [2.0, 2.0, 0.5, 0.5]


def test_missing_attribute_is_reported_at_setup(tmp_path: Any) -> None:
    with pytest.raises(MisconfigurationException, match=r"pl_module.iou_thresh.*no such attribute"):
        _trainer(tmp_path, 2, [DynamicIoUThreshold(attr="iou_thresh")]).fit(ThresholdModel())
    with pytest.raises(MisconfigurationException, match=r"`pl_module.ctx` does not exist"):
        _trainer(tmp_path, 2, [ScheduledValue("ctx.value", [0.5], [1, 2])]).fit(ThresholdModel())


def test_unknown_total_steps_is_an_error(tmp_path: Any) -> None:
    trainer = Trainer(
        max_epochs=-1, callbacks=[DynamicIoUThreshold()], logger=False, enable_progress_bar=False
    )
    model = ThresholdModel()
    model.train_dataloader = lambda: iter([torch.randn(2, 32)] * 3)  # no length: infinite estimate
    with pytest.raises(MisconfigurationException, match="total number of steps is unknown"):
        trainer.fit(model)


def test_resume_at_20_percent_gives_the_scheduled_threshold(tmp_path: Any) -> None:
    ckpt = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=10, save_top_k=-1, filename="{step}"
    )
    lr_scale = ScheduledValue("reward_ctx.temperature", milestones=[0.3], values=[1.0, 0.1])
    iou = DynamicIoUThreshold()
    _trainer(tmp_path, 12, [iou, lr_scale, ckpt], enable_checkpointing=True).fit(ThresholdModel())
    path = tmp_path / "ckpt" / "step=10.ckpt"  # 10 of 50 steps = 20 % of the resumed run's budget
    state = torch.load(path, weights_only=False)["callbacks"]
    # two instances coexist under their own keys
    assert state[iou.state_key]["values"] == [0.85, 0.95, 0.99]
    assert state[lr_scale.state_key]["attr"] == "reward_ctx.temperature"
    assert iou.state_key != lr_scale.state_key

    spy = Spy()
    model = ThresholdModel()  # fresh: iou_threshold == 0.0 until the callback sets it
    with pytest.warns(UserWarning, match="total_steps=12.0, start_step=0; resuming with .*total_steps=50.0"):
        _trainer(tmp_path, 50, [DynamicIoUThreshold(), spy]).fit(model, ckpt_path=path)
    assert spy.at_train_start == (10, 0.95)
    assert spy.seen[0] == (10, 0.95)
    assert dict(spy.seen)[12] == 0.95 and dict(spy.seen)[13] == 0.99  # 25 % of 50 = 12.5
    assert model.iou_threshold == 0.99


def test_resume_under_the_same_schedule_is_silent(tmp_path: Any, recwarn: Any) -> None:
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1, filename="{step}")
    _trainer(tmp_path, 4, [DynamicIoUThreshold(), ckpt], enable_checkpointing=True).fit(ThresholdModel())
    spy = Spy()
    old = torch.load(tmp_path / "ckpt" / "step=4.ckpt", weights_only=False)
    key = DynamicIoUThreshold().state_key
    old["callbacks"][key] = {}  # a checkpoint from before the state existed still loads (.get defaults)
    torch.save(old, tmp_path / "old.ckpt")
    _trainer(tmp_path, 20, [DynamicIoUThreshold(), spy]).fit(
        ThresholdModel(), ckpt_path=tmp_path / "old.ckpt"
    )
    assert spy.at_train_start == (4, 0.95)
    assert not [w for w in recwarn if "schedule applies" in str(w.message)]


def test_start_step_schedules_over_the_steps_after_it(tmp_path: Any) -> None:
    # 40 steps, the first 20 a warm-up stage: 10 % / 25 % of the remaining 20 are steps 22 and 25.
    spy = Spy()
    iou = DynamicIoUThreshold(start_step=20)
    _trainer(tmp_path, 40, [iou, spy]).fit(ThresholdModel())
    by_step = dict(spy.seen)
    assert {by_step[s] for s in range(0, 22)} == {0.85}
    assert by_step[22] == by_step[24] == 0.95
    assert by_step[25] == by_step[39] == 0.99
    assert iou.state_dict()["start_step"] == 20
    with pytest.raises(MisconfigurationException, match="start_step"):
        DynamicIoUThreshold(start_step=-1)
    with pytest.raises(MisconfigurationException, match="leaves no steps"):
        _trainer(tmp_path, 10, [DynamicIoUThreshold(start_step=10)]).fit(ThresholdModel())


def test_the_checkpoint_keeps_the_schedule_and_no_copy_of_the_value(tmp_path: Any) -> None:
    # The value has one owner, the module attribute (TriuneModule checkpoints its iou_threshold): a copy in
    # the callback's state could disagree with it after a resume under another schedule.
    iou = DynamicIoUThreshold()
    _trainer(tmp_path, 20, [iou]).fit(ThresholdModel())
    assert set(iou.state_dict()) == {"attr", "milestones", "values", "total_steps", "start_step"}
