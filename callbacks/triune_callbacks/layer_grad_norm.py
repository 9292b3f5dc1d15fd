"""Per-layer gradient norms, to see how gradients grow from the last layer to the first."""

from __future__ import annotations

import re
from collections.abc import Mapping

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch.optim import Optimizer
from typing_extensions import override

from triune_callbacks._fsdp import fsdp_root_module, local_tensor
from triune_callbacks._trainer_steps import is_logging_batch, logger_step

DEFAULT_GROUPS = {"vit": r"visual\.blocks\.(\d+)\.", "llm": r"language_model\.layers\.(\d+)\."}


class LayerGradNorm(Callback):
    """Logs the gradient norm of every layer of some parameter groups, and first-over-last ratios.

    V-Triune reports that with the ViT trained, its gradients grow 5-10x from the last block to the
    first and training destabilises (arXiv 2505.18129, §4); this callback makes that measurable. Each
    parameter name (``pl_module.named_parameters()``) is matched with ``re.search`` against each
    group's regex; the first capture group is the layer index. Parameters without a gradient
    (frozen) are skipped, so a frozen ViT simply logs nothing.

    Runs in ``on_before_optimizer_step``, which Lightning calls under manual optimization too (from
    ``optimizer.step()``), after gradients are final (all-reduced under DDP, unscaled under AMP).
    When a training batch makes several optimizer steps, only its first is measured. Written to the
    loggers at Lightning's logger step, every ``log_every_n_steps`` training batches:
    ``grad_norm/<group>/layer_<idx:02d>``, ``grad_norm/<group>/total`` and
    ``grad_norm/<group>/first_over_last`` (lowest-index layer over highest-index layer). Under FSDP
    each rank holds a shard of every gradient: the per-layer sums are all-reduced (one collective per
    group), so the logged norms are the whole layer's, as under DDP.

    Args:
        groups: Group name to regex with one capture group for the layer index. ``None`` uses
            ``{"vit": r"visual\\.blocks\\.(\\d+)\\.", "llm": r"language_model\\.layers\\.(\\d+)\\."}``
            (Qwen2.5-VL names).
        log_every_n_steps: Log every this many training batches.
        norm_type: Order of the norm (``2.0``, ``1.0``, ``float("inf")``).

    Raises:
        MisconfigurationException: If a group name is empty or holds ``/``, a regex does not compile
            or has no capture group, ``log_every_n_steps < 1`` or ``norm_type <= 0``.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from triune_callbacks import LayerGradNorm
        >>> trainer = Trainer(max_steps=10, callbacks=[LayerGradNorm(log_every_n_steps=5)])
    """

    def __init__(
        self,
        groups: Mapping[str, str] | None = None,
        log_every_n_steps: int = 1,
        norm_type: float = 2.0,
    ) -> None:
        groups = dict(DEFAULT_GROUPS if groups is None else groups)
        if not groups:
            raise MisconfigurationException("`groups` must map at least one group name to a regex, got {}.")
        self._patterns: dict[str, re.Pattern[str]] = {}
        for name, pattern in groups.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise MisconfigurationException(
                    f"Group names must be non-empty and without '/', got {name!r}."
                )
            try:
                compiled = re.compile(pattern)
            except (re.error, TypeError) as err:
                raise MisconfigurationException(
                    f"Group {name!r}: regex {pattern!r} does not compile ({err})."
                ) from err
            if compiled.groups < 1:
                raise MisconfigurationException(
                    f"Group {name!r}: regex {pattern!r} needs a capture group for the layer index,"
                    r" e.g. r'blocks\.(\d+)\.'."
                )
            self._patterns[name] = compiled
        if log_every_n_steps < 1:
            raise MisconfigurationException(f"`log_every_n_steps` must be >= 1, got {log_every_n_steps}.")
        if not norm_type > 0:
            raise MisconfigurationException(f"`norm_type` must be > 0 (inf allowed), got {norm_type}.")
        self.groups = groups
        self.log_every_n_steps = log_every_n_steps
        self.norm_type = float(norm_type)
        self._layers: dict[str, dict[int, list[tuple[str, torch.nn.Parameter]]]] = {}
        self._last_batch: int | None = None
        self.last_logged: dict[str, float] = {}

    def _index(
        self, pl_module: pl.LightningModule
    ) -> dict[str, dict[int, list[tuple[str, torch.nn.Parameter]]]]:
        layers: dict[str, dict[int, list[tuple[str, torch.nn.Parameter]]]] = {
            name: {} for name in self._patterns
        }
        for pname, param in pl_module.named_parameters():
            for group, pattern in self._patterns.items():
                match = pattern.search(pname)
                if match is not None:
                    layers[group].setdefault(int(match.group(1)), []).append((pname, param))
                    break
        return layers

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # indexed here, not in setup: `configure_model` may create the layers after setup
        self._layers = self._index(pl_module)
        self._last_batch = None
        empty = [g for g, layers in self._layers.items() if not layers]
        if empty:
            names = [n for n, _ in pl_module.named_parameters()][:5]
            rank_zero_warn(
                f"LayerGradNorm: no parameter matches group(s) {empty} ({[self.groups[g] for g in empty]});"
                f" first parameter names are {names}."
            )

    def layer_norms(self, sharded: bool = False) -> dict[str, float]:
        """``{tag: value}`` for the current gradients (no logging). ``sharded``: each rank holds a shard
        of every gradient (FSDP), so per-layer sums (max for ``inf``) are all-reduced first — a collective
        every rank must enter."""
        out: dict[str, float] = {}
        inf = self.norm_type == float("inf")
        for group, layers in self._layers.items():
            idxs = sorted(layers)
            acc: list[torch.Tensor] = []  # per layer: sum |g|^p (max |g| for inf) over this rank's gradients
            present: list[bool] = []
            device = None
            for idx in idxs:
                grads = [local_tensor(p.grad.detach()) for _, p in layers[idx] if p.grad is not None]  # FSDP2: shards
                present.append(bool(grads))
                parts = [torch.linalg.vector_norm(g.float(), self.norm_type) for g in grads if g.numel()]
                device = device or (grads[0].device if grads else None)
                if not parts:
                    acc.append(torch.zeros((), device=device))
                elif inf:
                    acc.append(torch.stack(parts).max())
                else:
                    acc.append(torch.stack(parts).pow(self.norm_type).sum())
            if not idxs:
                continue
            values = torch.stack([a.to(device or "cpu") for a in acc])  # [layers]
            has = torch.tensor(present, dtype=torch.float32, device=values.device)  # [layers]
            if sharded and torch.distributed.is_available() and torch.distributed.is_initialized():
                op = torch.distributed.ReduceOp.MAX if inf else torch.distributed.ReduceOp.SUM
                torch.distributed.all_reduce(values, op=op)
                torch.distributed.all_reduce(has, op=torch.distributed.ReduceOp.MAX)
            norms = values if inf else values.pow(1.0 / self.norm_type)
            keep = [i for i, h in enumerate(has.tolist()) if h > 0]
            if not keep:
                continue
            kept = norms[keep].float().cpu()  # one device sync per group
            for i, value in zip(keep, kept.tolist(), strict=True):
                out[f"grad_norm/{group}/layer_{idxs[i]:02d}"] = value
            out[f"grad_norm/{group}/total"] = float(torch.linalg.vector_norm(kept, self.norm_type))
            first, last = kept[0].item(), kept[-1].item()
            if len(keep) > 1 and last > 0:
                out[f"grad_norm/{group}/first_over_last"] = first / last
        return out

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        step = logger_step(trainer)
        if step == self._last_batch or not is_logging_batch(trainer, self.log_every_n_steps):
            return
        self._last_batch = step
        # FSDP: every rank computes (the all-reduce is a collective); the loggers write rank 0's copy
        metrics = self.layer_norms(sharded=fsdp_root_module(trainer) is not None)
        self.last_logged = metrics
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
