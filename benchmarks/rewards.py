"""Math scoring, ours vs math-verify called the plain way, on the same completions, one core.

Usage: python benchmarks/rewards.py [--samples 64] [--group 8] [--rounds 3] [--seed 0] [--pool]

Cases come in GRPO groups: `--samples` ground truths, `--group` completions each, scored in group
order as the trainer scores them. Most ground truths are plain numbers (integers, negatives,
fractions, decimals); the rest (multiple-choice letters, surds, pi, intervals) always go through
math-verify. Every completion is well formed (one `\\boxed{}` in an `<answer>` block), so both sides
should read the same answer and the verdicts must agree.

- plain: per completion `parse(gold.lower())`, `parse(response.lower())`, `verify(gold, answer)`
  (math-verify's own SIGALRM timeouts off, as our verifier runs it; that only makes plain faster);
- ours: `lit_triune.rewards.score_batch`, the whole in-process reward (format reward, spec checks,
  5 s budget included): the ground truth read once per group, plain numbers judged without sympy,
  a group's repeated answers judged once.

Agreement is reported twice. `agree` is against plain as it stands. One class of cases differs there,
and not because of us: plain math-verify reads *nothing* from a bare-letter gold (`parse('A')` and
`parse('a')` are both `[]`: its `ExprExtractionConfig` matches only numbers and numeric expressions,
its `LatexExtractionConfig` only delimited LaTeX -- the lowercasing plays no part), and `verify([], x)`
is False, so plain marks every letter completion wrong, the right ones too. `ref` is the reference:
plain math-verify called the same way, except that a gold it reads nothing from is handed to it in
math mode, `$A$` (the form math-verify's own examples use for golds). Each disagreement with plain
is put in its class and counted; any that is not explained by that class is printed as unexplained.
Timing is always plain as it stands (which, with an empty gold, is cheaper on letters than `ref`).

CPU time (`time.process_time`) of this one process; the sides alternate `--rounds` times and each
keeps its fastest round (overall, and per kind: each kind's completions are also timed on their own
every round). Every cache (math-verify's and ours) is cleared before each round, so no
round profits from an earlier one. Prints agreement and the ratio per kind of ground truth and
overall; the last lines are `agreement: <ours vs ref>` and `ratio: <plain / ours>` (CPU time per
completion). `--pool` also times the
old mixed math + detection batch in-process vs `VerifierPool` (2 more processes).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections import Counter
from collections.abc import Callable

LETTERS = "ABCDE"
THINK = [
    "Let me work through this carefully.",
    "First I read the figure, then I compute step by step.",
    "I compare the lengths in the diagram and simplify.",
]


def _wrap(rng: random.Random, answer: str) -> str:
    return f"<think>\n{rng.choice(THINK)}\n</think>\n<answer>\\boxed{{{answer}}}</answer>"


def _plain_group(rng: random.Random, kind: str, g: int) -> tuple[str, list[str]]:
    """(gold, g shown answers): about half right, in the forms models write."""
    if kind == "integer":
        k = rng.randint(0, 2000)
        right, wrong = [str(k)], [str(k + d) for d in (1, -1, 10, 2)]
        gold = rng.choice([str(k), f"\\boxed{{{k}}}"])
    elif kind == "negative":
        k = -rng.randint(1, 500)
        right, wrong = [str(k)], [str(-k), str(k - 1), str(k + 3)]
        gold = str(k)
    elif kind == "fraction":
        b = rng.randint(2, 40)
        a = rng.choice([x for x in range(1, 3 * b) if x % b])
        right = [f"\\frac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\dfrac{{{2 * a}}}{{{2 * b}}}"]
        wrong = [f"\\frac{{{a + 1}}}{{{b}}}", f"\\frac{{{b}}}{{{a}}}", f"{a}/{b + 1}"]
        gold = f"\\frac{{{a}}}{{{b}}}"
    else:  # decimal
        v = rng.randint(1, 9999) / 100
        right = [f"{v:g}", f"{v:.2f}", f"{v:.3f}"]
        wrong = [f"{v + 0.5:g}", f"{v * 2:g}", f"{v + 0.01:.2f}"]
        gold = f"{v:g}"
    return gold, [rng.choice(right) if rng.random() < 0.5 else rng.choice(wrong) for _ in range(g)]


def _other_group(rng: random.Random, kind: str, g: int) -> tuple[str, list[str]]:
    """Ground truths that are not plain numbers: math-verify decides on both sides. LaTeX golds carry
    `$...$`: plain math-verify reads a bare `\\sqrt{6}` as 6 (ours reads the gold like an answer block)."""
    if kind == "letter":
        gold = rng.choice(LETTERS)
        return gold, [rng.choice(LETTERS) for _ in range(g)]
    if kind == "surd":
        n = rng.choice([2, 3, 5, 6, 7])
        right = [f"\\sqrt{{{n}}}", f"\\frac{{\\sqrt{{{4 * n}}}}}{{2}}"]
        wrong = [f"\\sqrt{{{n + 1}}}", f"{n}", f"2\\sqrt{{{n}}}"]
        return f"$\\sqrt{{{n}}}$", [rng.choice(right) if rng.random() < 0.5 else rng.choice(wrong) for _ in range(g)]
    a, b = sorted(rng.sample(range(-9, 10), 2))  # interval
    right, wrong = [f"({a}, {b})", f"\\left({a}, {b}\\right)"], [f"[{a}, {b}]", f"({a}, {b + 1})"]
    return f"$({a}, {b})$", [rng.choice(right) if rng.random() < 0.5 else rng.choice(wrong) for _ in range(g)]


KINDS: dict[str, tuple[float, Callable[..., tuple[str, list[str]]]]] = {
    "integer": (0.30, _plain_group), "negative": (0.10, _plain_group), "fraction": (0.15, _plain_group),
    "decimal": (0.15, _plain_group), "letter": (0.10, _other_group), "surd": (0.10, _other_group),
    "interval": (0.10, _other_group),
}  # fmt: skip


def cases(samples: int, group: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, gold, response) for `samples` groups of `group` completions, in group order."""
    rng = random.Random(seed)
    names = list(KINDS)
    out = []
    for _ in range(samples):
        kind = rng.choices(names, weights=[KINDS[k][0] for k in names])[0]
        gold, shown = KINDS[kind][1](rng, kind, group)
        out += [(kind, gold, _wrap(rng, answer)) for answer in shown]
    return out


def _clear_caches() -> None:
    from math_verify import parser
    from sympy.core.cache import clear_cache

    from lit_triune.rewards.verifiers.math import read_gold

    for name in dir(parser):
        fn = getattr(parser, name)
        if hasattr(fn, "cache_clear") and name not in ("get_extraction_regexes", "lazy_latex_regex", "lazy_expr_regex", "lazy_string_regex"):
            fn.cache_clear()  # parse caches, not the compiled regexes (those are set-up, kept by both)
    read_gold.cache_clear()  # and with each gold the verdicts kept on it
    clear_cache()  # sympy's: otherwise one side's sympy objects speed up the other's next round


def plain(golds: list[str], responses: list[str]) -> list[bool]:
    from math_verify import parse, verify

    out = []
    for gold, response in zip(golds, responses, strict=True):
        g = parse(gold.lower(), parsing_timeout=None)
        a = parse(response.lower(), parsing_timeout=None)
        out.append(bool(verify(g, a, timeout_seconds=None)))
    return out


def reference(golds: list[str], responses: list[str]) -> list[bool]:
    """plain, except that a gold plain math-verify reads nothing from is given in math mode (`$A$`)."""
    from math_verify import parse

    return plain([f"${g}$" if not parse(g.lower(), parsing_timeout=None) else g for g in golds], responses)


def _why(gold: str) -> str | None:
    """The known class of a difference between plain and ours, or None (unexplained)."""
    from math_verify import parse

    if not parse(gold.lower(), parsing_timeout=None):
        if parse(gold, parsing_timeout=None):
            return "plain reads no gold after lowercasing (parse(gold.lower()) == [] but parse(gold) != [])"
        return "plain reads no gold, lowercased or not (parse(gold) == parse(gold.lower()) == []: verify is False)"
    return None


def ours(golds: list[str], responses: list[str]) -> list[bool]:
    from lit_triune.rewards import score_batch

    rms = [{"verifier": "mathverify", "ground_truth": gold} for gold in golds]
    return [r["accuracy"] == 1.0 for r in score_batch(responses, rms)]


def _cpu(fn: Callable[..., list[bool]], *args: list[str]) -> tuple[float, list[bool]]:
    _clear_caches()
    start = time.process_time()
    out = fn(*args)
    return time.process_time() - start, out


def _pool_comparison(n: int = 512, workers: int = 2) -> None:
    """The old figure: a mixed math + detection batch in-process vs through `VerifierPool`."""
    from lit_triune.rewards import VerifierPool, score_batch

    rng = random.Random(0)
    samples = [_pool_math(rng) if i % 2 == 0 else _pool_detection(rng) for i in range(n)]
    responses, rms, sizes = [s[0] for s in samples], [s[1] for s in samples], [(420, 616)] * n
    start = time.perf_counter()
    local = score_batch(responses, rms, image_sizes=sizes, iou_threshold=0.85)
    local_rate = n / (time.perf_counter() - start)
    with VerifierPool(num_workers=workers, timeout_s=5.0) as pool:
        pool.wait_ready(120)
        start = time.perf_counter()
        pooled = pool.score_batch(responses, rms, image_sizes=sizes, iou_threshold=0.85)
        pool_rate = n / (time.perf_counter() - start)
    same = all(a["reward"] == b["reward"] for a, b in zip(local, pooled, strict=True))
    print(f"pool: {n} samples (math + detection), {workers} workers, same rewards: {same}; "
          f"rewards/s in-process {local_rate:.1f}, pool {pool_rate:.1f} ({pool_rate / local_rate:.2f}x)")  # fmt: skip


def _pool_math(rng: random.Random) -> tuple[str, dict]:
    a, b = rng.randint(1, 99), rng.randint(2, 99)
    shown = rng.choice([f"\\frac{{{a}}}{{{b}}}", f"{a / b:.6f}", f"\\frac{{{a + 1}}}{{{b}}}", f"{a}/{b}"])
    return _wrap(rng, shown), {"verifier": "mathverify", "ground_truth": f"\\boxed{{\\frac{{{a}}}{{{b}}}}}"}


def _pool_detection(rng: random.Random) -> tuple[str, dict]:
    gt, pred = [], []
    for _ in range(rng.randint(1, 6)):
        x1, y1 = rng.randint(0, 800), rng.randint(0, 800)
        box = [x1, y1, x1 + rng.randint(20, 199), y1 + rng.randint(20, 199)]
        label = rng.choice(["dog", "cat", "car", "person"])
        gt.append({"bbox_2d": box, "label": label})
        pred.append({"bbox_2d": [round(v * (0.616 if i % 2 == 0 else 0.42)) for i, v in enumerate(box)], "label": label})
    ratios = {"iou_max_label_first": 1.0, "iou_completeness": 0.3}
    rm = {"verifier": "detection", "ground_truth": f"<answer>\n{gt}\n</answer>",
          "verifier_parm": {"det_verifier_normalized": True, "det_reward_ratio": ratios}}  # fmt: skip
    return f"<think>\nI see {len(pred)} objects.\n</think>\n<answer>\n{pred}\n</answer>", rm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64, help="ground truths (groups)")
    parser.add_argument("--group", type=int, default=8, help="completions per ground truth")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", action="store_true", help="also time the verifier pool (2 more processes)")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its "timeout disabled" notice

    from lit_triune.rewards.scoring import warm_up

    warm_up()
    data = cases(args.samples, args.group, args.seed)
    kinds, golds, responses = [c[0] for c in data], [c[1] for c in data], [c[2] for c in data]
    plain(golds[:16], responses[:16])  # imports and compiled regexes, outside the timing
    best = {"plain": float("inf"), "ours": float("inf")}
    verdicts: dict[str, list[bool]] = {}
    per_kind: dict[str, dict[str, float]] = {"plain": {}, "ours": {}}  # CPU s by kind, fastest round of each
    for _ in range(args.rounds):
        for side, fn in (("plain", plain), ("ours", ours)):
            spent, verdicts[side] = _cpu(fn, golds, responses)
            best[side] = min(best[side], spent)
            for kind, seconds in _by_kind(fn, kinds, golds, responses).items():
                per_kind[side][kind] = min(per_kind[side].get(kind, float("inf")), seconds)
    n = len(data)
    ref = reference(golds, responses)
    agree = [p == o for p, o in zip(verdicts["plain"], verdicts["ours"], strict=True)]
    agree_ref = [r == o for r, o in zip(ref, verdicts["ours"], strict=True)]
    print(f"math: {args.samples} ground truths x {args.group} completions = {n}, one core, CPU time, "
          f"best of {args.rounds} rounds; {sum(verdicts['plain'])} correct by plain math-verify, {sum(ref)} by ref")  # fmt: skip
    print(f"{'kind':>10} {'n':>5} {'agree':>7} {'ref':>7} {'plain ms':>9} {'ours ms':>8} {'plain/ours':>11}")
    for kind in KINDS:
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            p, o = per_kind["plain"][kind] / len(idx) * 1e3, per_kind["ours"][kind] / len(idx) * 1e3
            share = 100.0 * sum(agree[i] for i in idx) / len(idx)
            share_ref = 100.0 * sum(agree_ref[i] for i in idx) / len(idx)
            print(f"{kind:>10} {len(idx):5d} {share:6.1f}% {share_ref:6.1f}% {p:9.3f} {o:8.3f} {p / o:11.2f}")
    p, o = best["plain"] / n * 1e3, best["ours"] / n * 1e3
    print(f"{'all':>10} {n:5d} {100.0 * sum(agree) / n:6.1f}% {100.0 * sum(agree_ref) / n:6.1f}% {p:9.3f} {o:8.3f} {p / o:11.2f}")  # fmt: skip
    classes = Counter(_why(golds[i]) for i, a in enumerate(agree) if not a)
    for why, count in classes.items():
        print(f"  differs from plain: {count} x {why or 'UNEXPLAINED'}")
    for i in [i for i, a in enumerate(agree) if not a and _why(golds[i]) is None][:5]:
        print(f"  unexplained: gold {golds[i]!r}, response {responses[i][-60:]!r}: plain {verdicts['plain'][i]}, ours {verdicts['ours'][i]}")  # fmt: skip
    for i in [i for i, a in enumerate(agree_ref) if not a][:5]:
        print(f"  differs from ref: gold {golds[i]!r}, response {responses[i][-60:]!r}: ref {ref[i]}, ours {verdicts['ours'][i]}")  # fmt: skip
    if args.pool:
        _pool_comparison()
    print(f"agreement with plain: {100.0 * sum(agree) / n:.1f}% ({sum(not a for a in agree)} differ, "
          f"{sum(classes[w] for w in classes if w is None)} unexplained)")  # fmt: skip
    print(f"agreement: {100.0 * sum(agree_ref) / n:.1f}%")
    print(f"ratio: {p / o:.2f}")


def _by_kind(fn: Callable[..., list[bool]], kinds: list[str], golds: list[str], responses: list[str]) -> Counter:
    """CPU seconds per kind: each kind's completions timed on their own (still in group order)."""
    out: Counter = Counter()
    for kind in KINDS:
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            out[kind] = _cpu(fn, [golds[i] for i in idx], [responses[i] for i in idx])[0]
    return out


if __name__ == "__main__":
    main()
