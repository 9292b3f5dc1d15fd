"""Resume through a real Trainer checkpoint: Lightning prefetches a batch, the data must not skip it."""

import lightning.pytorch as pl
import torch

from lit_triune.data import TriuneDataModule


class Recorder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(list(batch.ids))
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward((self.w * 0).sum() + self.w.sum() * 0)
        opt.step()

    def configure_optimizers(self):
        return torch.optim.SGD([self.w], lr=0.0)


def _fit(tmp_path, steps, ckpt=None, workers=0):
    dm = TriuneDataModule(synthetic={"counting": 20, "math": 20}, batch_size=2, cache_dir=str(tmp_path / "c"),
                          shard_size=6, num_workers=workers, seed=3)
    model = Recorder()
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt)
    return trainer, model


def test_trainer_checkpoint_resume_is_exact(tmp_path):
    _, full = _fit(tmp_path, 8, workers=2)
    trainer, first = _fit(tmp_path, 3, workers=2)
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    _, second = _fit(tmp_path, 8, ckpt=str(tmp_path / "mid.ckpt"), workers=2)
    assert first.seen + second.seen == full.seen
