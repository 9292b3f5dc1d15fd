"""A non-finite loss or gradient skips the optimizer step, is counted, leaves the weights (and the
optimizer state) untouched, and the run goes on."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from rl_fit import fit, tiny_data, tiny_module

import lit_triune.rl.training as training_mod

NAN_LOSS_BATCH = 1  # the loss of this batch is NaN (a NaN advantage)
INF_GRAD_BATCH = 3  # the loss is finite, a gradient is not


class Watch(pl.Callback):
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._before: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._before = {n: p.detach().clone() for n, p in pl_module.policy.named_parameters()}
        self.rows.append({"batch": batch_idx, "step_before": trainer.global_step})

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.rows[-1]["batch"] == INF_GRAD_BATCH:  # runs before the module's own clipping hook
            p = next(p for g in optimizer.param_groups for p in g["params"] if p.grad is not None)
            p.grad.view(-1)[0] = math.inf

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        after = dict(pl_module.policy.named_parameters())
        self.rows[-1].update(
            step_after=trainer.global_step,
            changed=sum(not torch.equal(self._before[n], p.detach()) for n, p in after.items()),
            skipped_logged=float(trainer.callback_metrics["train/skipped_nonfinite"]),
            counter=pl_module.counters.get("nonfinite_steps_skipped", 0),
            loss=float(outputs["loss"]),
        )


def test_nonfinite_loss_and_gradient_skip_the_step(tmp_path, monkeypatch):
    calls = {"n": 0}

    def advantages(rewards, group_size, scale, valid=None):  # a learning signal every step, NaN in one
        adv = torch.linspace(-1.0, 1.0, rewards.numel())
        if calls["n"] == NAN_LOSS_BATCH:
            adv[3] = math.nan
        calls["n"] += 1
        return adv

    monkeypatch.setattr(training_mod, "group_advantages", advantages)
    module, watch = tiny_module(), Watch()
    trainer = fit(module, tiny_data(tmp_path / "data"), tmp_path, max_steps=4, callbacks=[watch])

    rows = {r["batch"]: r for r in watch.rows}
    assert sorted(rows) == [0, 1, 2, 3]  # the run went on after both bad steps
    assert trainer.global_step == 4
    skipped = {NAN_LOSS_BATCH, INF_GRAD_BATCH}
    for b, r in rows.items():
        if b in skipped:
            assert r["changed"] == 0, r  # no parameter moved
            assert r["skipped_logged"] == 1.0, r
        else:
            assert r["changed"] > 10, r
            assert r["skipped_logged"] == 0.0, r
    assert math.isnan(rows[NAN_LOSS_BATCH]["loss"])
    assert [rows[b]["counter"] for b in range(4)] == [0, 1, 1, 2]
    assert module.counters["nonfinite_steps_skipped"] == 2
    # Every batch is one attempted step (global_step counts it, on every rank alike); a skipped one updates
    # nothing: a NaN loss drops its gradients before opt.step(), a non-finite norm is found inside it.
    assert all(r["step_after"] == r["step_before"] + 1 for r in rows.values())
    # The optimizer and the LR schedule saw only the 2 real updates.
    opt = module.optimizers().optimizer
    steps = {float(s["step"]) for s in opt.state.values() if "step" in s}
    assert steps == {2.0}
    assert module.lr_schedulers().last_epoch == 2
    # ... and the counter is in the checkpoint.
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert ckpt["lit_triune"]["counters"]["nonfinite_steps_skipped"] == 2
