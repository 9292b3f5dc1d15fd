"""lit_triune/private_api.py: the private Lightning / transformers names it uses still exist on the installed
versions and still do what the adapters rely on. A failure here means an upgrade changed them: update
private_api.py (and its checked version range), not the callers."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import lightning
import pytest
import torch
import transformers
from lightning.pytorch import LightningModule, Trainer
from memory_logger import MemoryLogger
from torch import nn
from torch.utils.data import DataLoader

from lit_triune import private_api


def test_installed_versions_are_the_checked_ones():
    """Outside the ranges private_api.py was checked against, re-check these names and widen the range."""
    assert private_api.lightning_checked(), (lightning.__version__, private_api.LIGHTNING_CHECKED)
    assert private_api.transformers_checked(), (transformers.__version__, private_api.TRANSFORMERS_CHECKED)


# ----- Lightning -------------------------------------------------------------------------------------
def test_trainer_still_has_the_private_results_collection():
    assert isinstance(Trainer.__dict__.get("_results"), property), "Trainer._results is gone or not a property"


class _LogsOnce(LightningModule):
    """Logs "once" on the first step only and "every" on each step; forgets "once" afterwards if asked."""

    def __init__(self, forget: bool) -> None:
        super().__init__()
        self.forget = forget
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.log("once", 1.0)
        elif self.forget:
            assert private_api.forget_logged(self.trainer, ["once"]) == 1
        self.log("every", float(batch_idx))
        return self.layer(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(torch.randn(3, 2), batch_size=1)


@pytest.mark.parametrize("forget", [False, True])
def test_forget_logged_stops_lightning_relogging_a_key(tmp_path, forget):
    """Lightning re-logs a key's last value on later steps (why `forget_logged` exists); after it, the key is
    logged only where it was produced, and `callback_metrics` still holds its value."""
    logger = MemoryLogger()
    module = _LogsOnce(forget)
    trainer = Trainer(max_steps=3, logger=logger, log_every_n_steps=1, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module)
    once = sorted({step for step, _ in logger.history["once"]})
    assert sorted({step for step, _ in logger.history["every"]}) == [0, 1, 2]
    assert once == ([0] if forget else [0, 1, 2])
    assert float(trainer.callback_metrics["once"]) == 1.0


def test_forget_logged_outside_a_loop_and_on_a_changed_trainer():
    assert private_api.forget_logged(Trainer(logger=False), ["x"]) == 0  # no running loop: nothing to reset
    with pytest.warns(UserWarning, match="_results"):
        assert private_api.forget_logged(object(), ["x"]) == 0


class _Steps(LightningModule):
    """Manual optimisation over an endless stream, as TriuneModule; saves `last` at the end like it does."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.layer = nn.Linear(2, 1)
        self.written: list[str] | None = None

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(self.layer(batch).sum())
        opt.step()

    def on_train_end(self) -> None:
        self.written = private_api.save_last_at_end(self.trainer)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(torch.randn(100, 2), batch_size=1)


@pytest.mark.parametrize("max_steps", [5, 4])
def test_save_last_at_end_writes_last_only_when_the_cadence_missed_the_final_step(tmp_path, max_steps):
    """Saves every 2 steps: a 5-step run's `last` would be step 4's weights; the end writes step 5's. A 4-step
    run's cadence saved the final step already, and nothing is written twice."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_last=True)
    module = _Steps()
    Trainer(max_steps=max_steps, callbacks=[ckpt], logger=False, enable_progress_bar=False,
            enable_model_summary=False).fit(module)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert saved["global_step"] == max_steps
    assert torch.equal(saved["state_dict"]["layer.weight"], module.layer.weight.detach())
    assert module.written == ([str(tmp_path / "last.ckpt")] if max_steps % 2 else [])
    assert ckpt.last_model_path == str(tmp_path / "last.ckpt")


# ----- transformers ----------------------------------------------------------------------------------
def test_checkpointing_layer_still_has_the_cache_switch():
    layer_class = private_api.checkpointing_layer_class()
    assert layer_class.__dict__.get("_can_checkpoint_with_cache") is False


class _Layer(private_api.checkpointing_layer_class()):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[object] = []

    def forward(self, x, past_key_values=None):
        self.seen.append(past_key_values)
        return x


def _checkpointed_layer() -> _Layer:
    from torch.utils.checkpoint import checkpoint

    layer = _Layer()
    layer.gradient_checkpointing = True
    layer._gradient_checkpointing_func = functools.partial(checkpoint, use_reentrant=False)
    return layer.train()


def test_keep_cache_under_checkpointing_keeps_what_hf_would_drop():
    layer = _checkpointed_layer()
    model = nn.Sequential(layer)
    cache = object()
    x = torch.ones(1, requires_grad=True)
    layer(x, past_key_values=cache)
    with private_api.keep_cache_under_checkpointing(model):
        layer(x, past_key_values=cache)
    layer(x, past_key_values=cache)
    assert layer.seen == [None, cache, None]  # HF drops it outside, keeps it inside
    assert "_can_checkpoint_with_cache" not in layer.__dict__


def test_keep_cache_under_checkpointing_fails_loudly_without_the_switch(monkeypatch):
    layer = _checkpointed_layer()
    monkeypatch.delattr(private_api.checkpointing_layer_class(), "_can_checkpoint_with_cache")
    with pytest.raises(RuntimeError, match="_can_checkpoint_with_cache"):
        with private_api.keep_cache_under_checkpointing(nn.Sequential(layer)):
            pass
    with private_api.keep_cache_under_checkpointing(nn.Sequential(nn.Linear(1, 1))):  # nothing checkpoints: fine
        pass


# ----- nothing writes Lightning's private trainer / strategy state -----------------------------------
_PRIVATE_ON_TRAINER = re.compile(r"\b\w*(trainer|strategy)\w*(\.\w+)*\._[A-Za-z]\w*")
_MUTATORS = {"update", "setdefault", "pop", "popitem", "clear", "append", "extend", "insert", "remove", "__setitem__"}


def private_trainer_writes(source: str) -> list[str]:
    """Assignments to (or in-place changes of) a `_private` attribute reached through a trainer or strategy."""
    tree = ast.parse(source)
    tainted = set()  # local names holding private trainer/strategy state: `kw = getattr(strategy, "_ddp_kwargs")`
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "getattr"
                    and len(value.args) >= 2 and isinstance(value.args[1], ast.Constant)):
                value = ast.Attribute(value=value.args[0], attr=str(value.args[1].value))
            if _PRIVATE_ON_TRAINER.search(ast.unparse(value)):
                tainted.add(node.targets[0].id)
    found = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and str(node.args[1].value).startswith("_"):
                targets = [ast.Attribute(value=node.args[0], attr=str(node.args[1].value))]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            targets = [node.func.value]
        for target in targets:
            root = target
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            tainted_root = isinstance(root, ast.Name) and root.id in tainted and root is not target
            if _PRIVATE_ON_TRAINER.search(ast.unparse(target)) or tainted_root or (
                    isinstance(node, ast.Call) and isinstance(root, ast.Name) and root.id in tainted):
                found.append(f"line {node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return found


def test_no_private_trainer_or_strategy_attribute_is_written():
    root = Path(__file__).resolve().parents[1]
    offenders = {}
    for path in [*(root / "lit_triune").rglob("*.py"), *(root / "callbacks").rglob("*.py")]:
        found = private_trainer_writes(path.read_text())
        if found:
            offenders[str(path.relative_to(root))] = found
    assert not offenders, offenders


@pytest.mark.parametrize("source", [
    "trainer.strategy._ddp_kwargs['find_unused_parameters'] = True",
    "self.trainer._results = None",
    "setattr(self.trainer.strategy, '_x', 1)",
    "strategy = self.trainer.strategy\nstrategy._ddp_kwargs.update(find_unused_parameters=True)",
    "kw = getattr(self.trainer.strategy, '_ddp_kwargs', None)\nkw['find_unused_parameters'] = True",  # the old module.py
    "trainer.fit_loop.epoch_loop._batches_that_stepped += 1",
])
def test_the_scan_sees_private_writes(source):
    assert private_trainer_writes(source)


def test_the_scan_allows_reads_and_public_writes():
    assert private_trainer_writes("n = trainer.fit_loop.epoch_loop._batches_that_stepped\n"
                                  "trainer.strategy.model = m\nself._trainer_steps = 1\nresults = trainer._results") == []
