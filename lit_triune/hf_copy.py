"""An HF-format copy of the policy with each training checkpoint, for transformers / vLLM without an export step.

    python lit_triune/main.py fit -c conf/tiny.yaml --trainer.callbacks+=lit_triune.hf_copy.HFCopyOnCheckpoint

or in a config's `trainer.callbacks` (appended after a `ModelCheckpoint`, which it accompanies):

    - class_path: lit_triune.hf_copy.HFCopyOnCheckpoint
      init_args:
        keep_each: false        # true: one copy per checkpoint (hf/step_<N>/), false: hf/last/ only

Whenever the trainer saves a checkpoint (ModelCheckpoint's cadence, `save_last`, `trainer.save_checkpoint`),
rank 0 writes what `lit-triune-export` would write from that checkpoint (`TriuneModule.export_pretrained`:
policy, processor, greedy generation_config) into `<checkpoint dir>/hf/last/` (or `hf/step_<N>/`); the
ModelCheckpoint's `dirpath`, else `<log dir>/checkpoints`. A copy is written into a temporary folder first and
renamed, so a reader never sees half a copy. Not under FSDP (each rank holds a shard; the callback refuses at
setup): export the sharded checkpoint with `lit-triune-export` instead. It lives in lit_triune, not in
triune_callbacks, because it calls the module's `export_pretrained`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override


class HFCopyOnCheckpoint(Callback):
    """Writes `pl_module.export_pretrained(dir)` next to every checkpoint the trainer saves.

    Args:
        dirname: folder for the copies, inside the checkpoint directory.
        keep_each: True keeps one copy per checkpoint (`<dirname>/step_<global step>`); False keeps the newest
            only (`<dirname>/last`), replaced at each save.

    Raises:
        MisconfigurationException: at setup, under an FSDP strategy or for a module without `export_pretrained`.
    """

    def __init__(self, dirname: str = "hf", keep_each: bool = False) -> None:
        if not dirname or os.sep in dirname or dirname in (".", ".."):
            raise MisconfigurationException(f"dirname must be one folder name, got {dirname!r}")
        self.dirname, self.keep_each = dirname, keep_each
        self.last_copy: Path | None = None  # the newest copy written (rank 0)
        self._step_written: int | None = None  # `save_last` saves twice at one step: one copy

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not callable(getattr(pl_module, "export_pretrained", None)):
            raise MisconfigurationException("HFCopyOnCheckpoint needs a module with export_pretrained(dir)")
        if isinstance(trainer.strategy, FSDPStrategy):
            raise MisconfigurationException("HFCopyOnCheckpoint: the policy is sharded under FSDP; export a saved "
                                            "checkpoint with `lit-triune-export <ckpt> <out_dir>` instead")

    def copy_dir(self, trainer: Trainer) -> Path:
        """Where the copies go: beside the checkpoints."""
        ckpt = next((cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)), None)
        if ckpt is not None and ckpt.dirpath:
            base = Path(ckpt.dirpath)
        else:
            base = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
        return base / self.dirname

    @override
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step == self._step_written:
            return
        out = self.copy_dir(trainer) / (f"step_{step}" if self.keep_each else "last")
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        pl_module.export_pretrained(str(tmp))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        self._step_written, self.last_copy = step, out
        rank_zero_info(f"HF copy of the policy at step {step}: {out}")
