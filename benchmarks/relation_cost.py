"""Relations against relations (benchmarks/relation_cases.py) through the math verifier, beside plain math-verify.

Usage: python benchmarks/relation_cost.py [--pairs 400] [--seed 0] [--cold]

Each generated (gold, answer) pair is scored once in this process by `score` (default mode: the cost limits of
verifiers/math_compare.py, rule 8 among them) and once by plain math-verify (`verify` without the limits), each
timed in CPU (`time.process_time`). The process is warm (sympy, math-verify and the LaTeX parser imported and
used on other pairs first); `--cold` clears sympy's cache before every call (the worst case). Prints per way of
making the answer (same, rearranged, scaled, swapped, perturbed, other) the verdicts and the CPU cost of both,
every pair where both gave a verdict and they differ, the pairs refused (`parse`) with math-verify's verdicts on
them, and the count above 50 ms CPU on each side. Issue 17: no completion under 1 KB above ~50 ms.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict

OVER_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold", action="store_true", help="clear sympy's cache before every call")
    args = parser.parse_args()

    from math_verify import parse, verify
    from relation_cases import pairs
    from sympy.core.cache import clear_cache

    from lit_triune.rewards import score
    from lit_triune.rewards.verifiers.math import read_answer, read_gold

    def plain(gold: str, answer: str) -> bool | None:
        text, config = read_answer(f"<answer>{answer}</answer>")
        pred = parse(text, extraction_config=config, parsing_timeout=None)
        return bool(pred) and verify(read_gold(gold).parsed, pred, timeout_seconds=None)

    def ours(gold: str, answer: str) -> dict:
        return score(
            f"<answer>{answer}</answer>",
            {"verifier": "mathverify", "ground_truth": gold, "format_ratio": 0.0},
        )

    for g, a, _ in pairs(20, seed=args.seed + 1000):  # warm-up on other pairs
        ours(g, a), plain(g, a)
    cases = pairs(args.pairs, seed=args.seed)
    rows = []
    for gold, answer, how in cases:
        if args.cold:
            clear_cache()
        t = time.process_time()
        res = ours(gold, answer)
        t_ours = (time.process_time() - t) * 1000
        if args.cold:
            clear_cache()
        t = time.process_time()
        try:
            verdict = plain(gold, answer)
        except Exception as e:  # noqa: BLE001 - reported
            verdict = f"raised {type(e).__name__}"
        t_plain = (time.process_time() - t) * 1000
        rows.append((gold, answer, how, res, verdict, t_ours, t_plain))

    by_how: dict[str, Counter] = defaultdict(Counter)
    differ, refused = [], []
    for gold, answer, how, res, verdict, t_ours, t_plain in rows:
        c = by_how[how]
        c["n"] += 1
        c["paid"] += verdict is True
        if res["failure"] is None:
            same = (res["accuracy"] == 1.0) == (verdict is True)
            c["agree" if same else "differ"] += 1
            if not same:
                differ.append((gold, answer, res["accuracy"], verdict))
        elif res["failure"] == "parse":
            c["refused"] += 1
            refused.append((gold, answer, verdict, res["detail"]))
        else:
            c["failed"] += 1
            differ.append((gold, answer, res["failure"], verdict))
        c["over_ours"] += t_ours > OVER_MS
        c["over_plain"] += t_plain > OVER_MS
    print(
        f"{len(rows)} relation pairs, seed {args.seed}, {'cold' if args.cold else 'warm'} sympy cache; CPU ms per score"
    )
    print(
        f"  {'answer':12s} {'n':>4s} {'mv paid':>7s} {'agree':>6s} {'differ':>6s} {'refused':>7s}  "
        f"{'ours max':>8s} {'>50':>4s}  {'plain max':>9s} {'>50':>4s}"
    )
    for how in sorted(by_how):
        c = by_how[how]
        mo = max(r[5] for r in rows if r[2] == how)
        mp = max(r[6] for r in rows if r[2] == how)
        print(
            f"  {how:12s} {c['n']:4d} {c['paid']:7d} {c['agree']:6d} {c['differ'] + c['failed']:6d} {c['refused']:7d}  "
            f"{mo:8.1f} {c['over_ours']:4d}  {mp:9.1f} {c['over_plain']:4d}"
        )
    for gold, answer, ours_v, verdict in differ:
        print(f"  DIFFER: gold {gold!r} answer {answer!r}: ours {ours_v}, math-verify {verdict}")
    reasons = Counter(d.split(":")[0][:90] for *_, d in refused)
    paid = [(g, a) for g, a, v, _ in refused if v is True]
    print(
        f"refused (parse): {len(refused)}, of which math-verify paid {len(paid)}"
        + (f", e.g. {paid[:4]}" if paid else "")
    )
    for why, n in reasons.most_common():
        print(f"  {n:4d}  {why}")
    slow = sorted(rows, key=lambda r: -r[5])[:5]
    print("slowest (ours ms, plain ms, gold, answer):")
    for gold, answer, _how, res, _verdict, t_ours, t_plain in slow:
        print(f"  {t_ours:7.1f} {t_plain:7.1f}  {gold!r} {answer!r} {res['failure']}")
    n_over_o = sum(r[5] > OVER_MS for r in rows)
    n_over_p = sum(r[6] > OVER_MS for r in rows)
    print(
        f"agreement: {sum(c['agree'] for c in by_how.values())} agree, {len(differ)} differ, {len(refused)} refused"
    )
    print(
        f"above 50 ms CPU: ours {n_over_o}, plain {n_over_p}; max ours {max(r[5] for r in rows):.1f} ms, "
        f"plain {max(r[6] for r in rows):.1f} ms"
    )


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
