"""One optimizer step with gradient clipping and a non-finite guard, and what it did (`StepOutcome`).

Clipping runs inside `optimizer.step()`: Lightning calls the callbacks' `on_before_optimizer_step` first
and the module's last, and the module hands its hook to `ClippedStepper.clip`, so gradient-norm callbacks
(LayerGradNorm) see the raw gradients and the update still uses clipped ones. `step` returns the outcome
of that clipping together with the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from lit_triune.models.sharding import clip_grad_norm
from lit_triune.rl.counters import RunCounters
from lit_triune.rl.distributed import on_all_ranks


@dataclass(frozen=True)
class StepOutcome:
    stepped: bool  # the parameters were updated (False: non-finite loss or gradient norm, counted)
    grad_norm: float  # total gradient norm before clipping; nan when no gradient was clipped


class ClippedStepper:
    """Steps optimizers for the module: clip to `max_norm`, skip (and count) a non-finite step on every rank."""

    def __init__(self, max_norm: float, counters: RunCounters) -> None:
        self.max_norm = max_norm
        self.counters = counters
        self._norm: float | None = None  # set by `clip` during the current `step`, read back by it

    def step(self, optimizer: Any, finite: bool, device: torch.device | str = "cpu") -> StepOutcome:
        """`optimizer.step()` (a LightningOptimizer: the module's hook calls `clip` inside it) after a backward
        whose loss was `finite` on this rank. Always steps, so `global_step` counts attempted steps alike on
        every rank; a step that is not finite on some rank updates no parameter anywhere."""
        finite = on_all_ranks(finite, device)
        if not finite:
            optimizer.zero_grad(set_to_none=True)  # the step below then updates no parameter
        self._norm = None
        optimizer.step()
        norm, self._norm = self._norm, None
        stepped = finite and (norm is None or math.isfinite(norm))
        if not stepped:
            self.counters.bump("nonfinite_steps_skipped")
        optimizer.zero_grad(set_to_none=True)
        return StepOutcome(stepped=stepped, grad_norm=math.nan if norm is None else norm)

    def clip(self, optimizer: Any, fsdp_root: Any | None = None) -> None:
        """The module's `on_before_optimizer_step`: clips the gradients the optimizer will apply; a non-finite
        norm drops them all, so the optimizer (which skips parameters without a gradient) changes nothing.
        `fsdp_root`: the FSDP root module when gradients are sharded (the norm is then a collective)."""
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if fsdp_root is not None:  # FSDP1 or FSDP2 (models/sharding.py)
            norm = clip_grad_norm(fsdp_root, params, self.max_norm)
        elif params:
            norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_norm))
        else:
            return
        self._norm = norm
        if not math.isfinite(norm):
            for p in params:
                p.grad = None
