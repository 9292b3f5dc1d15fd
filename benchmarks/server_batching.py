"""Trainer ranks sharing one vLLM rollout server: their requests sampled in one engine call vs one call each.

With `RemoteEngine(share=True)` every trainer rank sends its own `generate` request. The server samples the
requests ready at once in one `VLLMEngine.generate_many` call (`batch_requests`, the default), holding a ready
request up to `--batch-window-s` for the other ranks'; with `--no-batch-requests` it samples them one after
another. This script launches one server of each kind (vLLM on CPU, the tiny Qwen2.5-VL, one intra-op thread
each), shares each between `--ranks` RemoteEngines (rank 0 launches and pushes the weights over gloo, the
others count their syncs, as under DDP), and per round: pushes the weights, then has every rank submit its
batch (`--prompts` prompts of the CPU default's synthetic tasks x `--group` samples, `--max-new-tokens`)
at once and waits for all rollouts. Rounds alternate between the two servers, so machine load falls on both.
Same seeds on both servers: it also checks that each rank's tokens are the same either way.

    python benchmarks/server_batching.py [--ranks 2] [--prompts 4] [--group 8] [--max-new-tokens 32]
                                         [--rounds 6] [--warmup 1] [--quick]

`--quick` (the smoke test): 2 ranks x 1 prompt x 2 samples, 4 new tokens, 1 round.

Last line: `ratio: <one call per request / one call for all ranks, time per round>`.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
ROOT = Path(__file__).resolve().parents[1]
TASKS = ("grounding", "detection", "counting", "ocr", "chart", "math")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batches(model_path: Path, ranks: int, prompts: int, seed: int) -> list[tuple[list[str], list]]:
    """One batch per rank, drawn from the CPU default's synthetic tasks."""
    from lit_triune.data import PromptBuilder, generate

    builder = PromptBuilder(str(model_path))
    pool = [builder.build(s) for t in TASKS for s in generate(t, ranks * prompts, seed=seed + 1)]
    random.Random(seed).shuffle(pool)
    return [([it["prompt"] for it in part], [it["image"] for it in part])
            for part in (pool[r * prompts:(r + 1) * prompts] for r in range(ranks))]


def _ranks(model_path: Path, n: int, batch: bool, args: argparse.Namespace, log_dir: Path) -> list:
    from lit_triune.rollout import RemoteEngine

    port = _free_port()
    kwargs = {"max_model_len": 1024, "max_num_seqs": max(16, n * args.prompts * args.group),
              "kv_cache_memory_bytes": 256 << 20}
    engines = [RemoteEngine(engine="vllm", model_path=str(model_path), engine_kwargs=kwargs, threads=args.threads,
                            share=True, port=port, batch_requests=batch, batch_window_s=args.batch_window_s,
                            log_dir=str(log_dir / ("batched" if batch else "alone")), connect_timeout_s=600)
               for _ in range(n)]
    for rank, engine in enumerate(engines):
        engine._rank = rank  # as under DDP: rank 0 launches and pushes, the others share its server
    return engines


def _round(engines: list, policy, batches: list, sampling) -> tuple[float, list[list[list[int]]]]:
    """Push (rank 0) and count (the others), then every rank submits at once; seconds until every rollout is back."""
    for engine in engines:
        engine.sync_weights(policy)
    results: list = [None] * len(engines)
    start = threading.Barrier(len(engines))

    def rank(r: int) -> None:
        start.wait()
        results[r] = engines[r].submit(*batches[r], sampling).result()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(len(engines))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if any(r is None for r in results):
        raise RuntimeError("a rank got no rollout (see the server logs)")
    return took, [r.completion_ids for r in results]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--prompts", type=int, default=4, help="prompts per rank")
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=6, help="measured rounds per server")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured rounds per server first")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads of each server")
    p.add_argument("--batch-window-s", type=float, default=0.05)
    p.add_argument("--quick", action="store_true", help="smoke test: 1 prompt x 2 samples, 4 tokens, 1 round")
    args = p.parse_args()
    if args.quick:
        args.prompts, args.group, args.max_new_tokens, args.rounds, args.warmup = 1, 2, 4, 1, 0
    os.environ.setdefault("LIT_TRIUNE_ROLLOUT_KEY", secrets.token_hex(16))  # shared by the ranks, as under DDP

    import torch
    from transformers import AutoModelForImageTextToText

    from lit_triune.models.tiny import build_tiny_model
    from lit_triune.rollout.base import SamplingConfig

    model_path = build_tiny_model("tiny")
    policy = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch.float32).eval()
    batches = _batches(model_path, args.ranks, args.prompts, seed=0)
    log_dir = Path(tempfile.mkdtemp(prefix="server_batching_"))
    servers = {"batched": _ranks(model_path, args.ranks, True, args, log_dir),
               "alone": _ranks(model_path, args.ranks, False, args, log_dir)}
    times: dict[str, list[float]] = {name: [] for name in servers}
    same_tokens = True
    print(f"{args.ranks} ranks x {args.prompts} prompts x {args.group} samples, {args.max_new_tokens} new tokens at "
          f"most, vLLM on CPU ({args.threads} thread per server); server logs in {log_dir}", flush=True)
    try:
        for k in range(args.warmup + args.rounds):
            sampling = SamplingConfig(n=args.group, max_new_tokens=args.max_new_tokens, seed=1000 + k)
            order = list(servers) if k % 2 == 0 else list(servers)[::-1]
            tokens = {}
            for name in order:
                took, tokens[name] = _round(servers[name], policy, batches, sampling)
                if k >= args.warmup:
                    times[name].append(took)
            same_tokens &= tokens["batched"] == tokens["alone"]
            print(f"round {k}{' (warm-up)' if k < args.warmup else ''}: "
                  + ", ".join(f"{name} {took:.3f} s" for name, took in
                              ((n, times[n][-1] if k >= args.warmup else float('nan')) for n in servers)), flush=True)
    finally:
        for engines in servers.values():
            for engine in engines[::-1]:
                engine.close()
    batched, alone = (statistics.median(times[n]) for n in ("batched", "alone"))
    rows = args.ranks * args.prompts * args.group
    print(f"median per round: one call for all ranks {batched:.3f} s ({rows / batched:.1f} completions/s), "
          f"one call per request {alone:.3f} s ({rows / alone:.1f} completions/s)")
    print(f"same tokens for every rank both ways: {'yes' if same_tokens else 'NO'}")
    print(f"ratio: {alone / batched:.3f}")
    if not same_tokens:
        sys.exit(1)


if __name__ == "__main__":
    main()
