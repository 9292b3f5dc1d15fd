from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.demos.boring_classes import RandomDataset
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader

from triune_callbacks import LayerGradNorm


class TwoTower(LightningModule):
    """Named like Qwen2.5-VL: visual.blocks.<i>. and language_model.layers.<i>."""

    def __init__(self, manual: bool = False, freeze_vit: bool = False) -> None:
        super().__init__()
        self.automatic_optimization = not manual
        self.visual = nn.Module()
        self.visual.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
        self.language_model = nn.Module()
        self.language_model.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(11))
        self.head = nn.Linear(8, 1)
        self.visual.requires_grad_(not freeze_vit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in [*self.visual.blocks, *self.language_model.layers]:
            x = torch.tanh(block(x))
        return self.head(x).pow(2).mean()

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> Any:
        loss = self(batch[:, :8])
        if self.automatic_optimization:
            return loss
        opt = self.optimizers()
        for _ in range(2):  # several optimizer steps per batch, like GRPO minibatches
            opt.zero_grad()
            self.manual_backward(self(batch[:, :8]))
            opt.step()
        return None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.01)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64), batch_size=4)


class GradSpy(Callback):
    """Reference norms computed the plain way right after LayerGradNorm ran."""

    def __init__(self) -> None:
        self.norms: list[dict[str, float]] = []

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: Any, optimizer: Any) -> None:
        out = {}
        for i, block in enumerate(pl_module.language_model.layers):
            grads = torch.cat([p.grad.flatten() for p in block.parameters()])
            out[f"grad_norm/llm/layer_{i:02d}"] = grads.norm().item()
        self.norms.append(out)


def _fit(
    tmp_path: Any, model: LightningModule, callbacks: list[Callback], logger: Any, steps: int
) -> Trainer:
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_steps=steps,
        callbacks=callbacks,
        logger=logger,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model)
    return trainer


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"groups": {}}, "at least one group"),
        ({"groups": {"a/b": r"x\.(\d+)"}}, "without '/', got 'a/b'"),
        ({"groups": {"vit": r"blocks\.\d+"}}, r"regex 'blocks\\\\.\\\\d\+' needs a capture group"),
        ({"groups": {"vit": r"blocks\.(\d+"}}, "does not compile"),
        ({"log_every_n_steps": 0}, ">= 1, got 0"),
        ({"norm_type": 0.0}, r"norm_type.*> 0 \(inf allowed\), got 0.0"),
    ],
)
def test_rejects_bad_args(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        LayerGradNorm(**kwargs)


def test_logs_per_layer_norms_under_automatic_optimization(tmp_path: Any, memory_logger: Any) -> None:
    spy = GradSpy()
    cb = LayerGradNorm()
    _fit(tmp_path, TwoTower(), [cb, spy], memory_logger, steps=3)
    h = memory_logger.history
    assert {f"grad_norm/vit/layer_{i:02d}" for i in range(3)} | {"grad_norm/vit/first_over_last"} <= set(h)
    assert "grad_norm/llm/layer_10" in h  # two-digit indices sort as strings too
    assert [s for s, _ in h["grad_norm/llm/layer_00"]] == [0, 1, 2]
    for step, ref in enumerate(spy.norms):
        for tag, value in ref.items():
            assert dict(h[tag])[step] == pytest.approx(value, rel=1e-5)
        ratio = dict(h["grad_norm/llm/first_over_last"])[step]
        assert ratio == pytest.approx(ref["grad_norm/llm/layer_00"] / ref["grad_norm/llm/layer_10"], rel=1e-5)
    total = dict(h["grad_norm/llm/total"])[0]
    assert total == pytest.approx(sum(v**2 for v in spy.norms[0].values()) ** 0.5, rel=1e-5)


def test_runs_under_manual_optimization_once_per_batch(tmp_path: Any, memory_logger: Any) -> None:
    spy = GradSpy()
    _fit(tmp_path, TwoTower(manual=True), [LayerGradNorm(log_every_n_steps=2), spy], memory_logger, steps=8)
    # 8 optimizer steps = 4 batches of 2 steps; the hook fired on every optimizer step ...
    assert len(spy.norms) == 8
    # ... and the callback measured the first step of every second batch (logger steps 1, 3)
    h = memory_logger.history
    assert [s for s, _ in h["grad_norm/vit/layer_00"]] == [1, 3]
    assert dict(h["grad_norm/llm/layer_05"])[1] == pytest.approx(
        spy.norms[2]["grad_norm/llm/layer_05"], rel=1e-5
    )


def test_frozen_group_logs_nothing_and_unmatched_group_warns(tmp_path: Any, memory_logger: Any) -> None:
    cb = LayerGradNorm(
        groups={"vit": r"visual\.blocks\.(\d+)\.", "audio": r"audio\.layers\.(\d+)\."}, norm_type=1.0
    )
    with pytest.warns(UserWarning, match=r"no parameter matches group\(s\) \['audio'\]"):
        _fit(tmp_path, TwoTower(freeze_vit=True), [cb], memory_logger, steps=2)
    assert not any(tag.startswith("grad_norm/") for tag in memory_logger.history)


def test_layers_created_in_configure_model_are_found(tmp_path: Any, memory_logger: Any) -> None:
    class Lazy(TwoTower):
        def __init__(self) -> None:
            super().__init__()
            del self.language_model

        def configure_model(self) -> None:
            self.language_model = nn.Module()
            self.language_model.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in [*self.visual.blocks, *self.language_model.layers]:
                x = torch.tanh(block(x))
            return self.head(x).pow(2).mean()

    _fit(tmp_path, Lazy(), [LayerGradNorm()], memory_logger, steps=1)
    assert "grad_norm/llm/layer_01" in memory_logger.history
