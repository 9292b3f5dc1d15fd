"""The RL optimizer and schedule: the paper's AdamW + linear warm-up by default, any class_path when configured
(issue 14 item 3), and a warm-up that counts RL updates whatever the warm-start's length."""

from __future__ import annotations

import sys

import pytest
import torch
from rl_fit import tiny_module

from lit_triune.main import cli_main
from lit_triune.rl.optimizers import LinearWarmup


def test_linear_warmup_rises_over_its_steps_then_holds() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LinearWarmup(opt, warmup_steps=4)
    rates = []
    for _ in range(6):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert LinearWarmup(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)).get_last_lr() == [2.0]


def _optimizers(module):
    module.configure_model()
    opts, scheds = module.configure_optimizers()
    return opts, scheds


def test_default_is_adamw_with_the_module_settings_and_a_warmup_that_ignores_the_warm_start() -> None:
    # The RL scheduler only steps on RL updates: a 300-step warm-start must not delay its warm-up (it did: the
    # factor was computed from step - warm_start_steps, holding the RL rate at 1/warmup for 300 RL steps).
    module = tiny_module(lr=3e-4, weight_decay=0.01, adam_betas=(0.8, 0.9), warmup_steps=2, warm_start_steps=300)
    (rl_opt, sft_opt), (rl_sched, _) = _optimizers(module)
    assert isinstance(rl_opt, torch.optim.AdamW)
    group = rl_opt.param_groups[0]
    assert (group["weight_decay"], group["betas"]) == (0.01, (0.8, 0.9))
    assert isinstance(rl_sched, LinearWarmup)
    assert group["lr"] == pytest.approx(1.5e-4)  # first RL step: half of lr
    rl_opt.step()
    rl_sched.step()
    assert group["lr"] == pytest.approx(3e-4)  # second RL step: all of it
    assert sft_opt.param_groups[0]["lr"] == pytest.approx(module.hparams.warm_start_lr)


def test_configured_optimizer_and_scheduler_are_used() -> None:
    module = tiny_module(optimizer=lambda params: torch.optim.SGD(params, lr=0.5, momentum=0.9),
                         lr_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    (rl_opt,), (rl_sched,) = _optimizers(module)
    assert isinstance(rl_opt, torch.optim.SGD) and rl_opt.param_groups[0]["momentum"] == 0.9
    assert isinstance(rl_sched, torch.optim.lr_scheduler.StepLR)
    trainable = {id(p) for p in module.policy.parameters() if p.requires_grad}
    assert {id(p) for g in rl_opt.param_groups for p in g["params"]} == trainable  # frozen ViT left out


def test_settings_a_configured_optimizer_makes_unused_are_warned_about() -> None:
    with pytest.warns(UserWarning, match=r"\['lr', 'weight_decay'\] are not used"):
        tiny_module(lr=1e-2, weight_decay=0.1, optimizer=lambda params: torch.optim.SGD(params, lr=0.5))


def test_optimizer_and_scheduler_are_class_paths_on_the_command_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["main.py"])
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "-c", "conf/tiny.yaml", "--model.optimizer=torch.optim.SGD", "--model.optimizer.lr=0.01",
                  "--model.lr_scheduler=torch.optim.lr_scheduler.ConstantLR", "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "class_path: torch.optim.SGD" in out and "lr: 0.01" in out
    assert "class_path: torch.optim.lr_scheduler.ConstantLR" in out
