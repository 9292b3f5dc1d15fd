"""Answers for a shard set, each scored against its reference: one JSON line per sample.

    lit-triune-predict runs/tiny/version_0/checkpoints/last.ckpt --shards mine=data/mine/val --out preds.jsonl
    python -m lit_triune.predict tiny --synthetic counting=8 --out preds.jsonl      # any model_path, built-in data

MODEL is a training checkpoint (a `.ckpt` file, or a sharded FSDP checkpoint directory: rebuilt as
`lit-triune-export` does) or anything `model.model_path` accepts (an HF directory such as an export, a Hub id
from the Hub cache, a tiny preset). `--shards NAME=PATH` (repeatable) names shard directories or globs in the
training data's format (docs/data.md; `lit-triune-prepare` writes them); `--synthetic TASK=N` adds N built-in
samples of a synthetic task. Shards always carry a reference (`reward_model.ground_truth`), so every line is scored.

Generation and scoring are validation's (`RolloutRunner.evaluate`: the module's rollout engine decoding greedily,
up to `val_max_new_tokens` tokens, and the verifier pool; box rewards at `val_iou_threshold`, else the
checkpoint's IoU threshold); the mean of each score per data source is printed at the end. A line holds
`index` (its position in the file), `id` and `data_source` (the sample's own fields; NAME only labels the
shard set), `prompt`, `response`, `reward_model` (the sample's reference), `image_size` (the image as the model
saw it, which box coordinates refer to), the scores (`reward`, `accuracy`, `format`; `iou` etc. for box tasks,
with `pred_boxes` / `gt_boxes`), `response_length`, `truncated` and `verifier_failure`.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

SCORE_KEYS = ("reward", "accuracy", "format")


def _is_checkpoint(model: str) -> bool:
    path = Path(model)
    return path.is_file() or (path.is_dir() and (path / "meta.pt").is_file())  # .ckpt, or FSDP's sharded dir


def load_policy(model: str, **module_kwargs: Any) -> Any:
    """A TriuneModule with its policy built: from a training checkpoint, or from a model path."""
    if _is_checkpoint(model):
        from lit_triune.export import load_module

        return load_module(model)
    from lit_triune.rl.module import TriuneModule

    module = TriuneModule(model_path=model, stage_reports=False, **module_kwargs)
    module.configure_model()
    return module


def _plain(value: Any) -> Any:
    """A JSON value: tensors and numpy scalars to Python numbers, NaN (a score the verifier did not give) to None."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def rows(records: dict[str, Any], batch: Any, start: int) -> list[dict[str, Any]]:
    """One JSON-ready row per prompt of a greedy (one completion per prompt) `evaluate` result."""
    skip = {"images", "prompt", "response", "data_source"}
    out = []
    ids = getattr(batch, "ids", None) or [None] * len(batch.reward_models)
    for i, (rm, size) in enumerate(zip(batch.reward_models, batch.image_sizes, strict=True)):
        row: dict[str, Any] = {"index": start + i, "id": ids[i], "data_source": records["data_source"][i],
                               "prompt": records["prompt"][i], "response": records["response"][i],
                               "reward_model": rm, "image_size": _plain(list(size))}
        for key, values in records.items():
            if key not in skip:
                row[key] = _plain(values[i])
        if not row.get("gt_boxes"):  # not a box task
            row.pop("pred_boxes", None)
            row.pop("gt_boxes", None)
        out.append({k: v for k, v in row.items() if v is not None or k in SCORE_KEYS})
    return out


def predict(module: Any, data: Any, out: str | Path, max_new_tokens: int | None = None) -> dict[str, dict[str, float]]:
    """Writes a JSON line per sample of `data`'s validation stream to `out`; returns the mean of each score per
    data source (`{source: {"count": n, "reward": ..., "accuracy": ..., "format": ...}}`)."""
    if max_new_tokens is not None:
        module.rollout_settings.val_max_new_tokens = max_new_tokens
    module.eval()
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        with out.open("w") as f, torch.no_grad():
            for batch in data.val_dataloader():
                records = module.runner.evaluate(batch, module.rollout_context())
                for row in rows(records, batch, start=n):
                    f.write(json.dumps(row) + "\n")
                    s = sums[row["data_source"]]
                    s["count"] += 1
                    for key in SCORE_KEYS:
                        s[key] += row[key] or 0.0  # a verifier failure scores 0, as in training
                n += len(batch.reward_models)
    finally:
        module.teardown("predict")  # the verifier pool's processes
    return {src: {"count": s["count"], **{k: s[k] / s["count"] for k in SCORE_KEYS}} for src, s in sorted(sums.items())}


def _pairs(values: list[str], flag: str) -> dict[str, list[str]]:
    """`NAME=VALUE` arguments grouped by NAME."""
    out: dict[str, list[str]] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise SystemExit(f"{flag} takes NAME=VALUE, got {value!r}")
        out.setdefault(name, []).append(rest)
    return out


# The data module's settings that shape a prompt: taken from a checkpoint saved by the command line, so the
# prompts are rendered as in training (LightningCLI stores them as `datamodule_hyper_parameters`).
PROMPT_SETTINGS = ("min_pixels", "max_pixels", "cot", "cot_sources", "cot_templates", "math_instructions",
                   "image_size", "synthetic_difficulty", "synthetic_layout")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:4]))
    p.add_argument("model", help="a training checkpoint (.ckpt or sharded FSDP directory), an HF directory, "
                                 "a Hub id or a tiny preset")
    p.add_argument("--shards", action="append", default=[], metavar="NAME=PATH",
                   help="a shard directory or glob, named NAME (repeat for more; the same NAME twice adds paths)")
    p.add_argument("--synthetic", action="append", default=[], metavar="TASK=N",
                   help="N built-in samples of a synthetic task (`lit-triune-prepare synthetic --help` lists them)")
    p.add_argument("--out", required=True, help="the JSONL file to write")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8)")
    p.add_argument("--max-new-tokens", type=int, help="longest answer (default: the model's val_max_new_tokens)")
    p.add_argument("--reward-workers", type=int,
                   help="verifier processes (0: score in this process; default: the checkpoint's, or the module's)")
    p.add_argument("--cache-dir", default="~/.cache/lit-triune/data",
                   help="where synthetic samples are built (default ~/.cache/lit-triune/data)")
    p.add_argument("--seed", type=int, default=0, help="which synthetic samples (default 0)")
    args = p.parse_args(argv)
    shards = _pairs(args.shards, "--shards")
    from lit_triune.data.synthetic import parse_counts

    synthetic = parse_counts(args.synthetic, "--synthetic")
    if not shards and not synthetic:
        p.error("give --shards NAME=PATH and/or --synthetic TASK=N")

    from lit_triune.data import TriuneDataModule

    prompt_settings: dict[str, Any] = {}
    if _is_checkpoint(args.model):
        from lit_triune.export import load_checkpoint, load_module

        ckpt = load_checkpoint(args.model)
        module = load_module(args.model, loaded=ckpt)
        saved = ckpt.get("datamodule_hyper_parameters", {})
        prompt_settings = {k: saved[k] for k in PROMPT_SETTINGS if k in saved}
        del ckpt
    else:
        module = load_policy(args.model)
    if args.reward_workers is not None:
        from lit_triune.rl.scoring import RewardScorer

        # the verifier pool the runner starts on its first batch
        module.runner.scorer_factory = functools.partial(RewardScorer, num_workers=args.reward_workers,
                                                         timeout_s=module.hparams.reward_timeout_s,
                                                         compat=module.hparams.compat)
    # train= is required by the data module and never read here: only the validation stream is iterated
    data = TriuneDataModule(train=shards or None, synthetic=synthetic or None, val=shards or None,
                            val_synthetic=synthetic or None, batch_size=args.batch_size, num_workers=0,
                            seed=args.seed, model_path=module.hparams.model_path, cache_dir=args.cache_dir,
                            **prompt_settings)
    means = predict(module, data, args.out, args.max_new_tokens)
    for source, m in means.items():
        print(f"{source:<16} n={int(m['count']):<5} accuracy {m['accuracy']:.3f}  reward {m['reward']:.3f}  "
              f"format {m['format']:.3f}")
    print(f"wrote {sum(int(m['count']) for m in means.values())} answers to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
