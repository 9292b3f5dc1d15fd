"""Training against a rollout server process (RemoteEngine, HF engine, gloo weight group on CPU).

- The server samples from the trained policy: after the last weight push its sampling log-probs equal the
  trainer's recompute on the trained weights (1e-5) and differ from the initial weights'.
- The server is SIGKILLed after step 2's update. `on_server_lost: retry`: it is relaunched, gets the weights
  again, and the fit ends normally, still sampling from the trained policy. `stop`: the fit raises an error
  naming the server, and the checkpoint of step 2 (the update made before the loss) is on disk, intact.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from logprob_gap import sampling_gap
from PIL import Image
from rl_fit import tiny_data, tiny_module

from lit_triune.rl.policy import load_policy
from lit_triune.rollout.base import SamplingConfig
from lit_triune.rollout.remote import RemoteEngine, RolloutServerLost
from triune_callbacks import RolloutCallback

pytestmark = pytest.mark.slow




class _KillServer(Callback):
    """SIGKILLs the server after the update of step `at` (before the weight push of that step)."""

    def __init__(self, engine: RemoteEngine, at: int) -> None:
        self.engine, self.at, self.killed_pid = engine, at, None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.at and self.killed_pid is None:
            self.killed_pid = self.engine._server_pid
            os.kill(self.killed_pid, signal.SIGKILL)
            self.engine._proc.wait()


class _Probe(Callback):
    """At the end of training: the server's sampled-token log-probs against the trained and initial policy."""

    def __init__(self) -> None:
        self.gaps: dict[str, float] = {}

    def on_train_end(self, trainer, module) -> None:  # noqa: ANN001
        processor = module.processor
        prompts = [processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}],
            add_generation_prompt=True, tokenize=False) for t in ("How many squares?", "Where is the square?")]
        images = [Image.new("RGB", (112, 112), (200, 40, 40)), Image.new("RGB", (112, 84), (40, 40, 200))]
        rollout = module.rollout_engine.generate(prompts, images, SamplingConfig(n=4, max_new_tokens=8, seed=9))
        was_training = module.policy.training
        module.policy.eval()
        self.gaps["trained"] = sampling_gap(module.policy, processor, prompts, images, rollout)
        self.gaps["initial"] = sampling_gap(load_policy(module.model_dir).eval(), processor, prompts, images, rollout)
        module.policy.train(was_training)


def _trainer(root: Path, callbacks: list[Callback], max_steps: int) -> pl.Trainer:
    pl.seed_everything(0)
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=root,
                      callbacks=[*callbacks, ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=1,
                                                             save_last=True)])


def _engine(tmp_path: Path, on_server_lost: str) -> RemoteEngine:
    return RemoteEngine(engine="hf", threads=1, on_server_lost=on_server_lost, retries=2, retry_wait_s=0.5,
                        log_dir=str(tmp_path / "server"))


def test_fit_against_server_retry_after_kill_samples_from_trained_policy(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "retry")
    killer, probe, sync = _KillServer(engine, at=2), _Probe(), RolloutCallback(engine)
    module = tiny_module(lr=1e-2)
    try:
        trainer = _trainer(tmp_path, [killer, sync, probe], max_steps=4)
        trainer.fit(module, datamodule=tiny_data(tmp_path / "data"))
    finally:
        engine.close()
    assert trainer.global_step == 4
    assert killer.killed_pid is not None and engine.reconnects == 1
    print(f"\nserver log-prob gap to the trained policy {probe.gaps['trained']:.2e}, "
          f"to the initial weights {probe.gaps['initial']:.2e}; pushes {sync.num_syncs}")
    assert probe.gaps["trained"] <= 1e-5  # the relaunched server samples from the trained policy ...
    assert probe.gaps["initial"] > 1e-2  # ... not from the checkpoint it loaded
    assert engine._proc is None  # close() stopped the server


def test_fit_stops_with_clear_error_and_intact_checkpoint_when_server_dies(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "stop")
    killer = _KillServer(engine, at=2)
    module = tiny_module(lr=1e-2)
    trainer = _trainer(tmp_path, [killer, RolloutCallback(engine)], max_steps=4)
    with pytest.raises(RolloutServerLost) as info:
        trainer.fit(module, datamodule=tiny_data(tmp_path / "data"))
    message = str(info.value)
    print(f"\n{message.splitlines()[0]}")
    assert f"rollout server 127.0.0.1:{engine.port}, pid {killer.killed_pid}" in message
    assert "exited with code -9" in message and "on_server_lost: stop" in message
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2  # the update made before the server died is saved
    saved = {k.removeprefix("policy."): v for k, v in ckpt["state_dict"].items()}
    for name, param in module.policy.state_dict().items():
        torch.testing.assert_close(saved[name], param, rtol=0, atol=0)  # nothing lost: the run's last weights
