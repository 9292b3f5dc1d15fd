"""The final checkpoints of `scripts/reproduce_table.sh` runs, scored again on a larger held-out set.

A stage report scores 64 images a source (conf/tiny.yaml's `val_synthetic`). When two sets of runs differ on one
source, the first question is whether the difference holds beyond those images. `reevaluate` scores each seed's
`last.ckpt` the way a stage report does (greedy and `val_samples` sampled completions per image, box rewards at
the run's `val_iou_threshold`, the run's prompt settings) on N fresh images per task (`--val TASK=N`), the same
images for every checkpoint (one data seed for all, apart from every run's training and validation seeds), and writes
`<out>/stage_reports_seed_<s>.json` with one entry, "final", so `compare-reproduce` pairs two such directories::

    python -m lit_triune.study reevaluate runs/reproduce --out runs/reeval/on_policy --val grounding=1024
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

# images no run trains or validates on: runs use data seeds 0..N and N + 1_000_003 (datamodule._VAL_SEED_OFFSET)
DEFAULT_DATA_SEED = 7_000


def final_checkpoints(runs: Path) -> dict[int, Path]:
    """{seed: the newest `last.ckpt` below <runs>/seed_<s>/} for every seed directory that has one."""
    found = {}
    for seed_dir in sorted(Path(runs).glob("seed_*")):
        checkpoints = sorted(seed_dir.rglob("checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
        if checkpoints:
            found[int(seed_dir.name.split("_", 1)[1])] = checkpoints[-1]
    return found


def reevaluate_checkpoint(checkpoint: Path, val: dict[str, int], data_seed: int = DEFAULT_DATA_SEED,
                          cache_dir: str = "~/.cache/lit-triune/data", batch_size: int = 64,
                          val_samples: int | None = None) -> dict[str, Any]:
    """One stage-report entry (`step`, `iou_threshold`, `scored_at_iou`, `sources`) for `checkpoint` scored on
    `val` ({task: images}) generated from `data_seed`."""
    from lit_triune.data import TriuneDataModule
    from lit_triune.export import load_checkpoint, load_module
    from lit_triune.predict import PROMPT_SETTINGS
    from lit_triune.rl.stage_report import score_validation, validation_means

    ckpt = load_checkpoint(checkpoint)
    module = load_module(checkpoint, loaded=ckpt)
    saved = ckpt.get("datamodule_hyper_parameters", {})
    step = int(ckpt.get("global_step", 0))
    del ckpt
    settings = module.rollout_settings
    if val_samples is not None:
        settings.val_samples = val_samples
    # the data module needs training data to exist; one sample a task, never read
    data = TriuneDataModule(synthetic={task: 1 for task in val}, val_synthetic=val, batch_size=batch_size,
                            val_batch_size=batch_size, num_workers=0, seed=data_seed,
                            model_path=module.hparams.model_path, cache_dir=cache_dir,
                            **{k: saved[k] for k in PROMPT_SETTINGS if k in saved})
    data.prepare_data()
    data.setup("validate")
    module.eval()
    module.runner.start()
    try:
        means = validation_means(*score_validation(module, data.val_dataloader(), module.rollout_context()))
    finally:
        module.teardown("validate")  # the verifier pool's processes
    scored_at = settings.val_iou_threshold
    return json.loads(json.dumps({  # plain types, as stage_reports.json
        "step": step, "iou_threshold": module.iou_threshold,
        "scored_at_iou": module.iou_threshold if scored_at is None else scored_at,
        "data_seed": data_seed, "val": val, "val_samples": settings.val_samples, "checkpoint": str(checkpoint),
        "sources": means}))


def reevaluate_runs(runs: Path, out: Path, val: dict[str, int], data_seed: int = DEFAULT_DATA_SEED,
                    seeds: list[int] | None = None, **kwargs: Any) -> list[Path]:
    """`reevaluate_checkpoint` for each seed's final checkpoint under `runs` (all seeds, or `seeds`), written to
    <out>/stage_reports_seed_<s>.json; a seed whose file exists with the same `val` and `data_seed` is kept."""
    found = final_checkpoints(runs)
    missing = sorted(set(seeds or []) - set(found))
    if missing:
        raise ValueError(f"no checkpoints/last.ckpt below {runs}/seed_<s> for seeds {missing}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for seed, checkpoint in sorted(found.items()):
        if seeds is not None and seed not in seeds:
            continue
        path = out / f"stage_reports_seed_{seed}.json"
        if path.is_file():
            done = json.loads(path.read_text()).get("final", {})
            if done.get("val") == val and done.get("data_seed") == data_seed:
                print(f"seed {seed}: {path} already scored on these images, kept", flush=True)
                written.append(path)
                continue
        start = time.perf_counter()
        entry = reevaluate_checkpoint(checkpoint, val, data_seed, **kwargs)
        entry["wall_time_s"] = round(time.perf_counter() - start, 1)
        path.write_text(json.dumps({"final": entry}, indent=2))
        print(f"seed {seed}: {checkpoint} -> {path} ({entry['wall_time_s']:.0f} s)", flush=True)
        written.append(path)
    return written
