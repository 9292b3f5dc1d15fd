"""Frozen-ViT update step vs unfrozen, on the same rollout batch: step time and peak memory.

One GRPO update (forward, backward, clip, AdamW step, through `lit_triune.rl.update.run_update`, the
trainer's own code) on a fixed batch: 4 synthetic counting prompts with one image each x 8 completions
of 32 tokens. Two variants, each in a fresh subprocess (alternating for `--rounds`, so load on this
shared machine falls on both):

- frozen:   the vision tower (ViT + merger) has no gradients and is outside the optimizer; its features
            are computed once per batch without autograd (`image_features`) and reused by the update
            (`cache_vision_features`, what `freeze="vision"` does in TriuneModule). Counted in the step.
- unfrozen: the whole model trains; the ViT runs inside the update's forward with autograd, is
            back-propagated and stepped.

Both use the default shared-prefix update (each prompt, image included, once per group). `--rows` adds
the two variants with `shared_prefix=False`, where every row carries its own copy of the image (what a
per-row trainer such as TRL does, and this project before the shared-prefix update). `--checkpointing`
turns on activation checkpointing (HF's, non-reentrant) in every variant, as conf/orsta.yaml does.

Sizes: the default `--preset small --image-size 224` gives 256 patches -> 64 visual tokens per image
and a ViT : LM compute share close to Qwen2.5-VL-7B's (see docs/performance.md for the arithmetic).
Peak memory is the growth of the process RSS over its value just before the first step, sampled every
millisecond by a thread (psutil): torch's CPU allocations (activations, gradients, optimizer state)
plus allocator caching, not a per-tensor account. Generation is not part of this benchmark (it is the
same in both variants).

    python benchmarks/frozen_vit.py [--preset small] [--image-size 224] [--steps 6] [--warmup 2]
                                    [--rounds 2] [--rows] [--checkpointing] [--quick]

Last line: `ratio: <frozen / unfrozen update step time>`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
MARK = "@@RESULT "
PROMPTS, GROUP, NEW_TOKENS = 4, 8, 32


class _RSSPeak:
    """Max RSS seen by a 1 ms sampling thread between start() and stop()."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.001)

    def start(self) -> _RSSPeak:
        self.base = self.peak = self.proc.memory_info().rss
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return (self.peak - self.base) / 2**20


def _child(args: argparse.Namespace) -> dict:
    import torch

    from lit_triune.data import PromptBuilder, generate
    from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
    from lit_triune.models.tiny import build_tiny_model
    from lit_triune.models.vision import image_features
    from lit_triune.rl import policy as policy_lib
    from lit_triune.rl.loss import DAPOLoss
    from lit_triune.rl.update import UpdateSettings, run_update

    if args.threads:
        torch.set_num_threads(args.threads)
    frozen = args.child.startswith("frozen")
    path = str(build_tiny_model(args.preset))
    model = policy_lib.load_policy(path)
    processor = policy_lib.load_processor(path)
    policy_lib.apply_freeze(model, "vision" if frozen else "none")
    if args.checkpointing:  # what conf/orsta.yaml's activation_checkpointing_policy does (non-reentrant)
        model.gradient_checkpointing_enable({"use_reentrant": False})
    model.train()
    if frozen:
        model.model.visual.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6)
    ip = processor.image_processor  # the preset caps pixels (small: 224 x 224); a larger --image-size lifts the cap
    max_pixels = max(args.image_size ** 2, ip.size["longest_edge"])
    ip.size = {"shortest_edge": ip.size["shortest_edge"], "longest_edge": max_pixels}
    builder = PromptBuilder(path, max_pixels=max_pixels)
    items = [builder.build(s) for s in generate("counting", PROMPTS, seed=0, image_size=args.image_size)]
    enc = encode_prompts(processor, [it["prompt"] for it in items], [it["image"] for it in items])
    gen = torch.Generator().manual_seed(0)
    completions = [torch.randint(10, 900, (NEW_TOKENS,), generator=gen).tolist() for _ in range(PROMPTS * GROUP)]
    index = torch.arange(PROMPTS).repeat_interleave(GROUP)
    advantages = torch.randn(PROMPTS * GROUP, generator=gen)
    settings = UpdateSettings(loss=DAPOLoss(clip_low=0.2, clip_high=0.28), shared_prefix=not args.child.endswith("_rows"))

    def step(finite: bool) -> tuple[bool, float]:
        norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        opt.step()
        opt.zero_grad(set_to_none=True)
        return True, norm

    feature_s: list[float] = []

    def one_step() -> None:
        features = None
        if frozen:  # once per rollout batch, no autograd: what TriuneModule does with a frozen ViT
            t = time.perf_counter()
            with torch.no_grad():
                features = image_features(model, enc)
            feature_s.append(time.perf_counter() - t)
        inputs = build_policy_inputs(model, enc, completions, index, processor.tokenizer.pad_token_id,
                                     model.config.image_token_id, pixels=features is None)
        run_update(model=model, inputs=inputs, advantages=advantages, loss_mask=inputs.completion_mask.clone(),
                   settings=settings, features=features, backward=lambda loss: loss.backward(), step=step,
                   global_token_count=lambda n: n)

    vit = sum(p.numel() for p in model.model.visual.parameters())
    lm_body = sum(p.numel() for n, p in model.model.language_model.named_parameters() if "embed" not in n)
    total = sum(p.numel() for p in model.parameters())
    rss = _RSSPeak().start()
    times = []
    for _ in range(args.warmup + args.steps):
        t = time.perf_counter()
        one_step()
        times.append(time.perf_counter() - t)
    peak_mb = rss.stop()
    return {"step_s": statistics.median(times[args.warmup:]), "times": times, "peak_mb": peak_mb,
            "feature_s": statistics.median(feature_s[args.warmup:]) if feature_s else 0.0,
            "vit_params": vit, "lm_body_params": lm_body, "params": total, "trainable": sum(p.numel() for p in params),
            "visual_tokens": int(enc.image_grid_thw.prod(-1).sum()) // 4 // PROMPTS,
            "prompt_tokens": len(enc.input_ids[0])}


def _run(variant: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--preset", args.preset, "--image-size",
           str(args.image_size), "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    if args.checkpointing:
        cmd.append("--checkpointing")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"{variant} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", choices=("tiny", "small"))
    p.add_argument("--image-size", type=int, default=224, help="synthetic image side in px (raises the preset's max_pixels if larger)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: robust on a shared machine; 0: torch's default)")
    p.add_argument("--rows", action="store_true", help="also run both variants with the per-row (no shared prefix) update")
    p.add_argument("--checkpointing", action="store_true",
                   help="activation checkpointing (HF, non-reentrant) of every decoder layer and ViT block, in all variants")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny preset, 1 warm-up + 1 step, 1 round")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(MARK + json.dumps(_child(args)), flush=True)
        return
    if args.quick:
        args.preset, args.image_size, args.steps, args.warmup, args.rounds = "tiny", 112, 1, 1, 1
    variants = ["frozen", "unfrozen"] + (["frozen_rows", "unfrozen_rows"] if args.rows else [])
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            runs[v].append(_run(v, args))
            print(f"round {r + 1} {v:>13}: {runs[v][-1]['step_s']:.3f} s/step, peak +{runs[v][-1]['peak_mb']:.0f} MB",
                  flush=True)
    info = runs["frozen"][0]
    print(f"preset {args.preset}, image {args.image_size}px -> {info['visual_tokens']} visual tokens/image, "
          f"prompt {info['prompt_tokens']} tokens, {PROMPTS} prompts x {GROUP} completions x {NEW_TOKENS} tokens; "
          f"ViT {info['vit_params'] / 1e6:.2f} M of {info['params'] / 1e6:.2f} M parameters; "
          f"{args.warmup} warm-up + {args.steps} steps x {args.rounds} rounds, {args.threads or 'default'} thread(s)"
          f"{', activation checkpointing' if args.checkpointing else ''}")
    med = {v: (statistics.median(x["step_s"] for x in rs), statistics.median(x["peak_mb"] for x in rs),
               rs[0]["trainable"]) for v, rs in runs.items()}
    feat = statistics.median(x["feature_s"] for x in runs["frozen"])
    print(f"{'variant':>13} {'s/step':>8} {'peak MB':>8} {'trainable':>10}")
    for v, (s, mb, n) in med.items():
        print(f"{v:>13} {s:8.3f} {mb:8.0f} {n / 1e6:9.2f}M")
    if args.rows:
        print(f"per-row update (shared_prefix=False): frozen / unfrozen = "
              f"{med['frozen_rows'][0] / med['unfrozen_rows'][0]:.3f}")
        print(f"shared-prefix / per-row update step time: frozen {med['frozen'][0] / med['frozen_rows'][0]:.3f}, "
              f"unfrozen {med['unfrozen'][0] / med['unfrozen_rows'][0]:.3f}"
              f"{' (activation checkpointing on)' if args.checkpointing else ''}")
    print(f"peak memory frozen / unfrozen: {med['frozen'][1] / max(med['unfrozen'][1], 1e-9):.3f}")
    print(f"frozen: of its {med['frozen'][0]:.3f} s/step, {feat:.3f} s is the once-per-batch ViT pass, which the "
          f"trainer shares with generation (a pass the unfrozen variant also makes when generating); without it "
          f"frozen / unfrozen = {(med['frozen'][0] - feat) / med['unfrozen'][0]:.3f}")
    share = 4 * info["vit_params"] / info["lm_body_params"]
    print(f"floor for any image size at these proportions: the LM runs each visual token (4 patches) at least once, "
          f"so ViT FLOPs <= 4 x {info['vit_params'] / 1e6:.2f} M / {info['lm_body_params'] / 1e6:.2f} M (LM without "
          f"embeddings) = {share:.2f} x the LM's and frozen / unfrozen >= 1 / (1 + {share:.2f}) = {1 / (1 + share):.2f}; "
          f"the same floor for Qwen2.5-VL-3B / 7B / 32B (ViT 0.67 B; LM 2.77 / 6.53 / 31.0 B): "
          f"{_floor(0.668, 2.77):.2f} / {_floor(0.676, 6.53):.2f} / {_floor(0.684, 31.0):.2f}")
    print(f"ratio: {med['frozen'][0] / med['unfrozen'][0]:.3f}")


def _floor(vit_b: float, lm_body_b: float) -> float:
    """Lowest frozen / unfrozen update time an update that runs each prompt once can reach (FLOPs only)."""
    return 1 / (1 + 4 * vit_b / lm_body_b)


if __name__ == "__main__":
    main()
