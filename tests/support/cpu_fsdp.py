"""Lightning's FSDPStrategy on CPU processes (gloo), for tests only.

Lightning refuses `FSDPStrategy` with a CPU accelerator (an exact-type check) and hands FSDP
`device_id=root_device.index`, which is None on CPU, where torch's FSDP then asks for an accelerator.
Given `device_id=cpu`, torch's FSDP shards, gathers, clips and checkpoints on CPU with gloo. This
subclass changes only those two things, so tests can run conf/orsta.yaml's strategy block (wrap and
activation-checkpointing policies, use_orig_params, sharded checkpoints) on 2 CPU processes.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

import torch
from lightning.pytorch.strategies import FSDPStrategy


class CPUFSDPStrategy(FSDPStrategy):
    """FSDPStrategy, allowed on a CPU accelerator (gloo)."""

    @contextmanager
    def model_sharded_context(self) -> Generator[None, None, None]:
        # Lightning's own, with device_id=cpu instead of None (what `wrap()` in configure_model uses)
        from torch.distributed.fsdp import FullyShardedDataParallel
        from torch.distributed.fsdp.wrap import enable_wrap

        with enable_wrap(wrapper_cls=FullyShardedDataParallel, cpu_offload=self.cpu_offload,
                         mixed_precision=self.mixed_precision_config, sharding_strategy=self.sharding_strategy,
                         device_id=torch.device("cpu"), **self.kwargs):
            yield
