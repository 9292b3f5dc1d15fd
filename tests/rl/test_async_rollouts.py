"""Asynchronous rollouts against a rollout server process (RemoteEngine, HF engine, gloo on CPU).

- The update trains on rollouts sampled one optimizer step earlier (staleness 1, logged), with each token
  weighted by π_old / π_behaviour, the engine's sampling log-probs (logged `train/behaviour_ratio_mean`
  moves off 1 once the rollouts are stale; the clipped ratio around the pre-update policy stays 1).
- Exact resume: a run resumed from its step-2 checkpoint (which holds the in-flight rollout) ends with the
  uninterrupted run's weights, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from rl_fit import tiny_data, tiny_module

from lit_triune.rollout.remote import RemoteEngine
from triune_callbacks import RolloutCallback

pytestmark = pytest.mark.slow


class _Metrics(Callback):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items()
                           if k.startswith(("async/", "train/ratio_mean", "train/behaviour_", "train/loss"))})


def _fit(root: Path, data: Path, max_steps: int, ckpt_path: str | None = None) -> tuple[torch.nn.Module, _Metrics]:
    engine = RemoteEngine(engine="hf", threads=1, log_dir=str(root / "server"))
    metrics = _Metrics()
    module = tiny_module(lr=1e-2, async_rollouts=True)
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
    return module.policy, metrics


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
    for (name, a), b in zip(full.named_parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
