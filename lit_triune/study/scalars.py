"""What a run logged, read back: TensorBoard scalars (EventAccumulator, as notebooks/training_dynamics.ipynb)
and the stage reports, on one x-axis — rollout batches of the RL stage done.

Lightning's logger step counts training batches that stepped an optimizer (callbacks/_trainer_steps.py):
a training scalar logged at step k belongs to the batch after k done ones; a validation that runs after
batch k+1 is logged at step k too (Lightning counts the batch after validating), so validation points
move to k + 1. Stage reports carry `global_step`, which counts optimizer steps: divided by
model.updates_per_rollout.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lit_triune.study import configs, layout

EVENT_GLOB = "events.out.tfevents.*"
Series = dict[int, float]  # step -> value


def load_scalars(log_dir: Path) -> dict[str, Series]:
    """{tag: {step: value}} over all event files below `log_dir`; a later file wins on a repeated step
    (a resumed run logs the steps after its checkpoint again)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    dirs = sorted({p.parent for p in Path(log_dir).rglob(EVENT_GLOB)},
                  key=lambda d: max(f.stat().st_mtime for f in d.glob(EVENT_GLOB)))
    merged: dict[str, Series] = {}
    for d in dirs:
        for path in sorted(d.glob(EVENT_GLOB), key=lambda f: f.stat().st_mtime):
            acc = EventAccumulator(str(path), size_guidance={SCALARS: 0})
            acc.Reload()
            for tag in acc.Tags()["scalars"]:
                merged.setdefault(tag, {}).update((e.step, float(e.value)) for e in acc.Scalars(tag))
    return merged


def run_config(run: Path) -> dict[str, Any]:
    path = Path(run) / layout.CONFIG
    return configs.load(path) if path.is_file() else {}


def batches_per_step(run: Path) -> int:
    return configs.updates_per_rollout(run_config(run))


def val_series(run: Path, metric: str, source: str, scalars: dict[str, Series] | None = None) -> Series:
    """`metric` of `source` over RL batches: the init report (batch 0), periodic validation, the final report."""
    scalars = load_scalars(layout.log_dir(run)) if scalars is None else scalars
    series: Series = {step + 1: v for step, v in scalars.get(f"val/{metric}/{source}", {}).items()}
    reports = layout.read_stage_reports(run) or {}
    k = batches_per_step(run)
    for stage in ("init", "final"):
        value = ((reports.get(stage) or {}).get("sources") or {}).get(source, {}).get(metric)
        if value is not None and math.isfinite(value):
            series[int(reports[stage].get("step", 0)) // k] = float(value)
    return dict(sorted(series.items()))


def stages(series: Series) -> list[tuple[int, float]]:
    """[(first step, value)] where a piecewise-constant logged value (the IoU threshold) changes."""
    out: list[tuple[int, float]] = []
    for step, value in sorted(series.items()):
        if not out or not math.isclose(out[-1][1], value, rel_tol=1e-6):
            out.append((step, round(value, 6)))  # TensorBoard stores float32
    return out
