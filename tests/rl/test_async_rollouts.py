"""Asynchronous rollouts against a rollout server process (RemoteEngine, HF engine, gloo on CPU).

- The update trains on rollouts sampled one optimizer step earlier (staleness 1, logged), with each token
  weighted by π_old / π_behaviour, the engine's sampling log-probs (logged `train/behaviour_ratio_mean`
  moves off 1 once the rollouts are stale; the clipped ratio around the pre-update policy stays 1).
- Exact resume: a run resumed from its step-2 checkpoint (which holds the in-flight rollout) ends with the
  uninterrupted run's weights, bit for bit.
- With DAPO's dynamic sampling too: refill steps train on nothing, staleness stays <= 1, exact resume still holds.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from rl_fit import tiny_data, tiny_module

from lit_triune.rl.module import TriuneModule
from lit_triune.rl.rollout_step import RolloutRunner
from lit_triune.rollout.remote import RemoteEngine
from triune_callbacks import RolloutCallback

pytestmark = pytest.mark.slow


class _Metrics(Callback):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items()
                           if k.startswith(("async/", "train/ratio_mean", "train/behaviour_", "train/loss"))})


def _fit(root: Path, data: Path, max_steps: int, ckpt_path: str | None = None,
         **module_args: Any) -> tuple[TriuneModule, _Metrics]:
    engine = RemoteEngine(engine="hf", threads=1, log_dir=str(root / "server"))
    metrics = _Metrics()
    module = tiny_module(lr=1e-2, async_rollouts=True, **module_args)
    pl.seed_everything(0)
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, log_every_n_steps=1,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, default_root_dir=root,
                         callbacks=[RolloutCallback(engine), metrics,
                                    ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=1, save_top_k=-1,
                                                    filename="{step}")])
    try:
        trainer.fit(module, datamodule=tiny_data(data), ckpt_path=ckpt_path)
    finally:
        engine.close()
    assert trainer.global_step == max_steps
    return module, metrics


def test_async_fit_is_one_step_off_policy_and_resumes_exactly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    full, metrics = _fit(tmp_path / "full", data, max_steps=4)
    updates = [m for m in metrics.steps if "async/staleness" in m]
    print("\n" + "\n".join(f"update {i}: {m}" for i, m in enumerate(updates)))
    assert len(metrics.steps) == 5  # the first call only submits
    assert [m["async/staleness"] for m in updates] == [0.0, 1.0, 1.0, 1.0]
    assert abs(updates[-1]["train/behaviour_ratio_mean"] - 1.0) > 1e-4  # behaviour policy != the policy updated
    assert abs(updates[0]["train/behaviour_ratio_mean"] - 1.0) < 1e-4  # staleness 0: the same weights
    assert all(m["train/ratio_mean"] == pytest.approx(1.0) for m in updates)  # one update: π_θ = π_old
    ckpt = torch.load(tmp_path / "full" / "ckpt" / "step=2.ckpt", map_location="cpu", weights_only=False)
    (in_flight,) = ckpt["lit_triune"]["async_rollouts"]
    assert len(in_flight["in_flight"]) == 1 and in_flight["in_flight"][0]["step"] == 1  # submitted by the call that made step 2
    resumed, _ = _fit(tmp_path / "resumed", data, max_steps=4, ckpt_path=str(tmp_path / "full" / "ckpt" / "step=2.ckpt"))
    _assert_same_weights(full, resumed)


def _assert_same_weights(a: TriuneModule, b: TriuneModule) -> None:
    for (name, x), y in zip(a.policy.named_parameters(), b.policy.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_async_fit_with_dynamic_sampling_refills_and_resumes_exactly(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """DAPO's dynamic sampling on asynchronous rollouts: a refill step trains on nothing, the groups kept wait for
    the update, staleness stays <= 1 (no optimizer step between a refill and its update), and a run resumed
    from a checkpoint ends with the uninterrupted run's weights. A random policy scores 0 everywhere, so one
    completion of some batches is scripted correct (by the batch's first prompt: the same batches in both runs)."""
    real_score = RolloutRunner.score

    def scripted(self, batch, rollout, iou_threshold):  # noqa: ANN001, ANN202
        scored = real_score(self, batch, rollout, iou_threshold)
        if zlib.crc32(batch.prompts[0].encode()) % 3 == 0:
            scored.results[0] = {**scored.results[0], "accuracy": 1.0, "reward": 1.1}
        return scored

    monkeypatch.setattr(RolloutRunner, "score", scripted)
    data, args = tmp_path / "data", dict(dynamic_sampling=True, max_refill_batches=3)
    full, metrics = _fit(tmp_path / "full", data, max_steps=3, **args)
    popped = [m for m in metrics.steps if "async/staleness" in m]
    print("\n" + "\n".join(f"step {i}: {m}" for i, m in enumerate(metrics.steps)))
    refills = full.counters.get("dynamic_sampling/refills", 0)
    without_signal = full.counters.get("dynamic_sampling/updates_without_signal", 0)
    assert refills > 0
    assert len(metrics.steps) == 1 + 3 + refills + without_signal  # the first call only submits
    assert len(popped) == len(metrics.steps) - 1 and all(m["async/staleness"] <= 1.0 for m in popped)
    ckpt = tmp_path / "full" / "ckpt" / "step=2.ckpt"
    (queue,) = torch.load(ckpt, map_location="cpu", weights_only=False)["lit_triune"]["async_rollouts"]
    assert queue["last_seed"] is not None
    resumed, _ = _fit(tmp_path / "resumed", data, max_steps=3, ckpt_path=str(ckpt), **args)
    _assert_same_weights(full, resumed)
