"""Our verifiers vs the released V-Triune reward code, on the same cases, one core, CPU time.

Usage: python benchmarks/vs_released.py --released DIR [--samples 64] [--detection 32] [--group 8] [--rounds 3]

DIR is the released server's `reward_server/` directory (MiniMax-AI/One-RL-to-See-Them-All, commit
2de4b129; its `verify.py` imports `utils.det_helper` and `utils.pycocotools`). Its code is not part of
this repository and is not copied into it: the script imports it from DIR.

Per sample, the released side does what the server's `/judge` handler does between parsing the request
and answering it: `json.loads` of `reward_verifier_parm`, the verifier constructed from it, `verify_format`,
`verify_accuracy`, the normalised final reward (no HTTP, no pydantic). Logging is switched off on both
sides while timing (the server logs `det_reward_ratio` at INFO on every detection sample; dropping that
only makes the released side faster).

Ours is `lit_triune.rewards.score_batch` in the default mode (what the trainer runs), and, as a third
column, `compat="vtriune"` (our re-implementation of the released server, bit for bit). The column
`compat = released` counts samples whose compat reward equals the released reward exactly: a check that
the two sides read the same cases the same way.

Cases come in GRPO groups, scored in group order as the trainer scores them: math, the groups of
`benchmarks/rewards.py` (same seed); detection, 32 ground truths x 8 completions, 1-6 ground-truth boxes
in the 0-1000 frame and predictions in pixels of a 420 x 616 image (some boxes shifted, some labels
wrong, some missing or extra), `det_verifier_normalized`, label-first IoU with
completeness 0.3 and mAP (ratios `iou_max_label_first` 1.0, `map` 0.5, `iou_completeness` 0.3). Every
cache (math-verify's, ours for math and boxes, sympy's) is cleared before each round; the sides alternate `--rounds` times
and each keeps its fastest round. The last two lines are `math: released/ours <r>` and
`detection: released/ours <r>` (CPU time per sample).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rewards as math_cases  # noqa: E402  (benchmarks/rewards.py: its cases and cache clearing)

IMAGE = (420, 616)  # (H, W) of the image as the model saw it
RATIOS = {"iou_max_label_first": 1.0, "map": 0.5, "iou_completeness": 0.3}
LABELS = ["dog", "cat", "car", "person", "bus"]


def detection_cases(groups: int, group: int, seed: int) -> list[tuple[str, str]]:
    """(response, ground truth) pairs, `group` completions per ground truth, in group order, both in the
    newline layout the released format check wants."""
    rng = random.Random(seed)
    out = []
    h, w = IMAGE
    for _ in range(groups):
        gt = []
        for _ in range(rng.randint(1, 6)):
            x1, y1 = rng.randint(0, 800), rng.randint(0, 800)
            gt.append({"bbox_2d": [x1, y1, x1 + rng.randint(20, 199), y1 + rng.randint(20, 199)],
                       "label": rng.choice(LABELS)})  # fmt: skip
        for _ in range(group):
            pred = []
            for item in gt:
                if rng.random() < 0.15:
                    continue  # missed
                shift = rng.choice([0, 0, 3, 10, 40])
                seen = [v + rng.randint(-shift, shift) for v in item["bbox_2d"]]
                seen = [
                    min(seen[0], seen[2]),
                    min(seen[1], seen[3]),
                    max(seen[0], seen[2]),
                    max(seen[1], seen[3]),
                ]
                pixels = [round(v * (w if i % 2 == 0 else h) / 1000) for i, v in enumerate(seen)]
                pred.append(
                    {"bbox_2d": pixels, "label": item["label"] if rng.random() < 0.85 else rng.choice(LABELS)}
                )
            if rng.random() < 0.15:
                pred.append({"bbox_2d": [10, 10, 60, 80], "label": rng.choice(LABELS)})  # a false alarm
            response = (
                f"<think>\nI see {len(pred)} objects.\n</think>\n<answer>\n{json.dumps(pred)}\n</answer>"
            )
            out.append((response, f"<answer>\n{gt}\n</answer>"))
    return out


def released_side(
    released: Any, name: str, parm: dict[str, Any]
) -> Callable[[list[str], list[str]], list[float]]:
    """The server's per-request work for verifier `name`, as a batch function."""
    parm_json = json.dumps(parm)
    cls = released.Verifier.get(name)

    def run(responses: list[str], solutions: list[str]) -> list[float]:
        out = []
        for response, solution in zip(responses, solutions, strict=True):
            verifier = cls(**json.loads(parm_json))
            fmt = verifier.verify_format(response)
            acc = verifier.verify_accuracy(response, solution)
            acc = acc["final_score"] if isinstance(acc, dict) else acc
            out.append(float(acc) * (1.0 / 1.1) + float(fmt) * (0.1 / 1.1))
        return out

    return run


def ours_side(
    rms: Callable[[str], dict], compat: str | None
) -> Callable[[list[str], list[str]], list[float]]:
    from lit_triune.rewards import score_batch

    def run(responses: list[str], solutions: list[str]) -> list[float]:
        results = score_batch(
            responses, [rms(s) for s in solutions], image_sizes=[IMAGE] * len(responses), compat=compat
        )
        return [r["reward"] for r in results]

    return run


def _cpu(
    fn: Callable[..., list[float]], responses: list[str], solutions: list[str]
) -> tuple[float, list[float]]:
    from lit_triune.boxes import _shared_truth

    math_cases._clear_caches()
    _shared_truth.cache_clear()  # our box ground truths, read once per group
    start = time.process_time()
    out = fn(responses, solutions)
    return time.process_time() - start, out


def compare(label: str, sides: dict[str, Callable[..., list[float]]], responses: list[str], solutions: list[str],
            rounds: int) -> float:  # fmt: skip
    best = {side: float("inf") for side in sides}
    rewards: dict[str, list[float]] = {}
    for _ in range(rounds):
        for side, fn in sides.items():
            spent, rewards[side] = _cpu(fn, responses, solutions)
            best[side] = min(best[side], spent)
    n = len(responses)
    same = sum(a == b for a, b in zip(rewards["released"], rewards["compat"], strict=True))
    ms = {side: best[side] / n * 1e3 for side in sides}
    print(f"{label:>10} {n:5d} {ms['released']:12.3f} {ms['ours']:8.3f} {ms['compat']:10.3f} "
          f"{ms['released'] / ms['ours']:16.2f} {ms['released'] / ms['compat']:18.2f} {same:6d}/{n}", file=sys.__stdout__)  # fmt: skip
    return ms["released"] / ms["ours"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--released", required=True, type=Path, help="the released server's reward_server/ directory"
    )
    parser.add_argument("--samples", type=int, default=64, help="math ground truths (groups)")
    parser.add_argument(
        "--group", type=int, default=8, help="completions per ground truth (math and detection)"
    )
    parser.add_argument("--detection", type=int, default=32, help="detection ground truths (groups)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.released / "verify.py").is_file():
        parser.error(f"{args.released} has no verify.py: pass the released reward_server/ directory")
    sys.path.insert(0, str(args.released.resolve()))
    import verify as released  # the released server's module

    from lit_triune.rewards.scoring import warm_up

    warm_up()
    logging.disable(logging.CRITICAL)
    parm = {"is_training": True, "step": 0, "total_steps": 1, "image_grid_thw": [[1, *IMAGE]]}
    det_parm = {**parm, "det_verifier_normalized": True, "det_reward_ratio": RATIOS}

    def math_rm(gold: str) -> dict:
        return {"verifier": "mathverify", "ground_truth": gold}

    def det_rm(gt: str) -> dict:
        return {"verifier": "detection", "ground_truth": gt,
                "verifier_parm": {"det_verifier_normalized": True, "det_reward_ratio": RATIOS}}  # fmt: skip

    data = math_cases.cases(args.samples, args.group, args.seed)
    m_resp, m_gold = [c[2] for c in data], [c[1] for c in data]
    det = detection_cases(args.detection, args.group, args.seed)
    d_resp, d_gold = [c[0] for c in det], [c[1] for c in det]
    released_side(released, "mathverify", parm)(m_resp[:16], m_gold[:16])  # imports, compiled regexes
    released_side(released, "detection", det_parm)(d_resp[:8], d_gold[:8])
    print(f"one core, CPU time per sample (ms), best of {args.rounds} rounds; ours = default mode, "
          f"compat = compat='vtriune'; compat = released: samples with the same reward")  # fmt: skip
    print(f"{'verifier':>10} {'n':>5} {'released ms':>12} {'ours ms':>8} {'compat ms':>10} "
          f"{'released/ours':>16} {'released/compat':>18} {'compat = released':>12}")  # fmt: skip
    quiet = open(os.devnull, "w")  # the released code prints a line per unparseable gold
    sys.stdout, shown = quiet, sys.stdout
    math_ratio = compare("math", {"released": released_side(released, "mathverify", parm),
                                  "ours": ours_side(math_rm, None), "compat": ours_side(math_rm, "vtriune")},
                         m_resp, m_gold, args.rounds)  # fmt: skip
    det_ratio = compare("detection", {"released": released_side(released, "detection", det_parm),
                                      "ours": ours_side(det_rm, None), "compat": ours_side(det_rm, "vtriune")},
                        d_resp, d_gold, args.rounds)  # fmt: skip
    sys.stdout = shown
    print(f"math: released/ours {math_ratio:.2f}")
    print(f"detection: released/ours {det_ratio:.2f}")


if __name__ == "__main__":
    main()
