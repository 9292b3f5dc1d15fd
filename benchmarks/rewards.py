"""Rewards/s for a mixed math + detection batch, in-process vs through `VerifierPool`, side by side.

Usage: python benchmarks/rewards.py [--n 512] [--workers 2] [--timeout 5]
Pool start-up (worker spawn + warm-up) is excluded; both sides score the same completions.
The last line is `rewards/s: <pool figure>`.
"""

from __future__ import annotations

import argparse
import random
import time

from lit_triune.rewards import VerifierPool, score_batch

LABELS = ["dog", "cat", "car", "person"]


def _math(rng: random.Random) -> tuple[str, dict]:
    a, b = rng.randint(1, 99), rng.randint(2, 99)
    gt = f"\\boxed{{\\frac{{{a}}}{{{b}}}}}"
    shown = rng.choice([f"\\frac{{{a}}}{{{b}}}", f"{a / b:.6f}", f"\\frac{{{a + 1}}}{{{b}}}", f"{a}/{b}"])
    response = f"<think>\nWork it out step by step for {a} over {b}.\n</think>\n<answer>\n\\boxed{{{shown}}}\n</answer>"
    return response, {
        "verifier": "mathverify",
        "ground_truth": gt,
        "accuracy_ratio": 1.0,
        "format_ratio": 0.1,
    }


def _detection(rng: random.Random) -> tuple[str, dict]:
    gt, pred = [], []
    for _ in range(rng.randint(1, 6)):
        x1, y1 = rng.randint(0, 800), rng.randint(0, 800)
        box = [x1, y1, x1 + rng.randint(20, 199), y1 + rng.randint(20, 199)]
        label = rng.choice(LABELS)
        gt.append({"bbox_2d": box, "label": label})
        px = [
            round(v * 0.616 + rng.uniform(-8, 8)) if i % 2 == 0 else round(v * 0.42 + rng.uniform(-8, 8))
            for i, v in enumerate(box)
        ]
        pred.append({"bbox_2d": px, "label": label})
    response = f"<think>\nI see {len(pred)} objects.\n</think>\n<answer>\n{pred}\n</answer>"
    ratios = {
        "iou_max_label_first": 1.0,
        "iou_max_iou_first": 0.0,
        "iou_completeness": 0.3,
        "map": 0.0,
        "map50": 0.0,
        "map75": 0.0,
    }
    rm = {"verifier": "detection", "ground_truth": f"<answer>\n{gt}\n</answer>", "accuracy_ratio": 1.0, "format_ratio": 0.1,
          "verifier_parm": {"det_verifier_normalized": True, "det_reward_ratio": ratios}}  # fmt: skip
    return response, rm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="samples, half math, half detection")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    samples = [(_math if i % 2 == 0 else _detection)(rng) for i in range(args.n)]
    responses, rms = [s[0] for s in samples], [s[1] for s in samples]
    sizes = [(420, 616)] * args.n

    start = time.perf_counter()
    local = score_batch(responses, rms, image_sizes=sizes, iou_threshold=0.85)
    local_rate = args.n / (time.perf_counter() - start)

    with VerifierPool(num_workers=args.workers, timeout_s=args.timeout) as pool:
        pool.wait_ready(120)
        start = time.perf_counter()
        pooled = pool.score_batch(responses, rms, image_sizes=sizes, iou_threshold=0.85)
        pool_rate = args.n / (time.perf_counter() - start)
        failures = pool.failure_counts()

    same = all(a["reward"] == b["reward"] for a, b in zip(local, pooled, strict=True))
    mean = sum(r["reward"] for r in pooled) / args.n
    print(
        f"batch: {args.n} samples (math + detection), pool workers: {args.workers}, same rewards: {same}, mean reward: {mean:.4f}"
    )
    print(f"pool failures: {failures}")
    print(f"{'in-process':>12} {'pool':>12} {'pool/in-process':>16}")
    print(f"{local_rate:12.1f} {pool_rate:12.1f} {pool_rate / local_rate:16.2f}")
    print(f"rewards/s: {pool_rate:.1f}")


if __name__ == "__main__":
    main()
