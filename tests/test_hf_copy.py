"""HFCopyOnCheckpoint: every checkpoint a fit saves gets an HF copy beside it that transformers loads with the
trained weights and a greedy generation_config; the policy itself keeps sampling."""

from __future__ import annotations

from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from rl_fit import tiny_data, tiny_module  # tests/support (conftest.py)

from lit_triune.hf_copy import HFCopyOnCheckpoint

MAX_STEPS = 2  # warm-start (supervised) steps, so both move the weights; a checkpoint after each


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_copy")
    module = tiny_module(warm_start_steps=MAX_STEPS, group_size=2)
    each, last = HFCopyOnCheckpoint(keep_each=True), HFCopyOnCheckpoint(dirname="hf_last")
    checkpoints = ModelCheckpoint(dirpath=root / "checkpoints", every_n_train_steps=1, save_last=True)
    pl.seed_everything(0)
    trainer = pl.Trainer(max_steps=MAX_STEPS, accelerator="cpu", devices=1, logger=False, log_every_n_steps=1,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, default_root_dir=root, callbacks=[checkpoints, each, last])
    trainer.fit(module, datamodule=tiny_data(root / "data"))
    return module, root, each, last


@pytest.mark.slow  # >= 5 s (a fit, the verifier warm-up)
def test_a_copy_per_checkpoint_loads_in_transformers_with_the_trained_weights(fitted):
    from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

    module, root, each, _ = fitted
    copies = root / "checkpoints" / "hf"
    assert sorted(p.name for p in copies.iterdir()) == ["step_1", "step_2"]  # save_last at step 2: one copy
    assert each.last_copy == copies / "step_2"
    loaded = AutoModelForImageTextToText.from_pretrained(copies / "step_2", dtype=torch.float32)
    AutoProcessor.from_pretrained(copies / "step_2")
    trained, copied = module.policy.state_dict(), loaded.state_dict()
    assert trained.keys() == copied.keys()
    assert all(torch.equal(copied[k], v) for k, v in trained.items())
    first = AutoModelForImageTextToText.from_pretrained(copies / "step_1", dtype=torch.float32).state_dict()
    assert any(not torch.equal(first[k], v) for k, v in trained.items())  # step 1's copy is step 1's policy
    gen = GenerationConfig.from_pretrained(copies / "step_2")
    assert gen.do_sample is False and gen.eos_token_id == module.policy.generation_config.eos_token_id
    assert module.policy.generation_config.do_sample is True  # rollouts still sample


@pytest.mark.slow  # >= 5 s (a fit, the verifier warm-up)
def test_keep_each_false_keeps_only_the_newest_copy(fitted):
    _, root, _, last = fitted
    copies = root / "checkpoints" / "hf_last"
    assert [p.name for p in copies.iterdir()] == ["last"]  # replaced at each save, no temporary folder left
    assert last.last_copy == copies / "last" and (copies / "last" / "config.json").is_file()


def test_refuses_fsdp_and_bad_names():
    module = tiny_module()
    fsdp = SimpleNamespace(strategy=FSDPStrategy.__new__(FSDPStrategy))
    with pytest.raises(MisconfigurationException, match="sharded under FSDP"):
        HFCopyOnCheckpoint().setup(fsdp, module, "fit")
    with pytest.raises(MisconfigurationException, match="export_pretrained"):
        HFCopyOnCheckpoint().setup(SimpleNamespace(strategy=None), pl.LightningModule(), "fit")
    with pytest.raises(MisconfigurationException, match="one folder name"):
        HFCopyOnCheckpoint(dirname="a/b")
