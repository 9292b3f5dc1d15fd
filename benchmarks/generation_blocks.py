"""Rollout generation with one `model.generate` call per data source vs one call for the whole batch.

HF's `generate` keeps computing every row of a call until its longest row stops. The CPU default mixes
sources whose answers differ ~7x in length (a detection box list ~80 tokens, a number ~12), so in one call
the short rows idle through the long ones' decode steps. `HFGenerateEngine(split_by_length_key=True)`
(the default) generates each source's prompts as their own call when the trainer passes the sources as
`length_keys`; this script times both on the same batches.

Answer lengths only look like training's if the policy has learnt the answer forms, so the script first
runs the CPU default's warm-start (`conf/tiny.yaml`, `--warm-start-steps`, then one RL step, ~1.5 min) and exports
it; `--policy DIR` reuses an exported policy instead. It then draws `--batches` batches of 16 prompts from
the default's six synthetic sources (equal shares, as the default's sampler) and times, per batch and
round, the RL rollout (8 samples a prompt, temperature 1, 128 new tokens at most, the frozen ViT's features
computed once per batch, as the trainer does) with and without length keys, alternating the order so
machine load falls on both. Same seed both ways: the sampled tokens differ only through the per-call seed.

    python benchmarks/generation_blocks.py [--policy DIR] [--batches 4] [--rounds 2] [--warm-start-steps 150]
                                           [--quick]

`--quick` (the smoke test): a 2-step warm-start on 32 samples per source, one batch, one round, 8 new tokens.

Last line: `ratio: <one call per source / one call per batch, generation time>`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
TASKS = ("grounding", "detection", "counting", "ocr", "chart", "math")
PROMPTS, GROUP, NEW_TOKENS = 16, 8, 128


def _warm_started_policy(out: Path, steps: int, extra: list[str]) -> Path:
    """The CPU default's warm-start and one RL step (the IoU schedule needs one), exported as an HF checkpoint."""
    run = out / "run"
    cmd = [sys.executable, str(ROOT / "lit_triune/main.py"), "fit", "-c", str(ROOT / "conf/tiny.yaml"),
           f"--trainer.max_steps={steps + 1}", f"--model.warm_start_steps={steps}", "--model.stage_reports=[]",
           f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
           f"--data.cache_dir={out / 'cache'}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": str(ROOT)}
    print(f"warm-start: {steps} steps of conf/tiny.yaml ...", flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    ckpt = next(run.rglob("last.ckpt"))
    from lit_triune.export import export

    return export(ckpt, out / "policy")


def _batches(policy: Path, n: int, seed: int) -> list[list[dict]]:
    from lit_triune.data import PromptBuilder, generate

    builder = PromptBuilder(str(policy))
    pool = {t: [builder.build(s) for s in generate(t, PROMPTS * n, seed=seed + 1)] for t in TASKS}
    rng = random.Random(seed)
    return [[pool[rng.choice(TASKS)].pop() for _ in range(PROMPTS)] for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--policy", help="an exported HF policy (default: run the CPU default's warm-start)")
    p.add_argument("--warm-start-steps", type=int, default=150)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=NEW_TOKENS, help="the CPU default's 128")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny warm-start, one batch, one round")
    args = p.parse_args()
    extra: list[str] = []
    if args.quick:
        args.warm_start_steps, args.batches, args.rounds, args.max_new_tokens = 2, 1, 1, 8
        extra = [f"--data.{split}.{t}={n}" for split, n in (("synthetic", 32), ("val_synthetic", 4)) for t in TASKS]

    import torch

    torch.set_num_threads(args.threads)
    from lit_triune.models.policy_inputs import encode_prompts
    from lit_triune.models.vision import image_features
    from lit_triune.rl import policy as policy_lib
    from lit_triune.rollout.base import SamplingConfig
    from lit_triune.rollout.hf_engine import HFGenerateEngine

    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(args.policy) if args.policy else _warm_started_policy(Path(tmp), args.warm_start_steps, extra)
        model = policy_lib.load_policy(str(policy))
        processor = policy_lib.load_processor(str(policy))
        batches = _batches(policy, args.batches, seed=0)
    model.eval()
    engine = HFGenerateEngine(model, processor)
    times: dict[str, list[float]] = {"per_source": [], "one_call": []}
    lengths: dict[str, list[int]] = {}
    for r in range(args.rounds):
        for b, batch in enumerate(batches):
            prompts, images = [it["prompt"] for it in batch], [it["image"] for it in batch]
            sources = [it["data_source"] for it in batch]
            enc = encode_prompts(processor, prompts, images)
            with torch.no_grad():
                enc.image_features = image_features(model, enc)
            sampling = SamplingConfig(n=GROUP, max_new_tokens=args.max_new_tokens, temperature=1.0, seed=1000 * r + b)
            order = ["per_source", "one_call"] if (r + b) % 2 == 0 else ["one_call", "per_source"]
            for variant in order:
                keys = sources if variant == "per_source" else None
                t0 = time.perf_counter()
                out = engine.generate(prompts, images, sampling, encoded=enc, length_keys=keys)
                times[variant].append(time.perf_counter() - t0)
                if variant == "one_call" and r == 0:
                    for i, ids in zip(out.prompt_index.tolist(), out.completion_ids, strict=True):
                        lengths.setdefault(sources[i], []).append(len(ids))
            print(f"round {r} batch {b}: per source {times['per_source'][-1]:.2f} s, "
                  f"one call {times['one_call'][-1]:.2f} s  ({', '.join(sorted(set(sources)))})", flush=True)
    print("answer length (tokens) per source, mean:",
          ", ".join(f"{s} {statistics.mean(v):.0f}" for s, v in sorted(lengths.items())))
    per, one = statistics.median(times["per_source"]), statistics.median(times["one_call"])
    print(f"generation per batch of {PROMPTS} prompts x {GROUP} samples, median of {len(times['one_call'])}: "
          f"one call per source {per:.2f} s, one call per batch {one:.2f} s")
    print(f"ratio: {per / one:.3f}")


if __name__ == "__main__":
    main()
