"""The comparison limits (lit_triune/rewards/verifiers/math_compare.py) against plain math-verify: verdicts and cost.

Usage: python benchmarks/math_compare.py [--answers 300] [--seed 0]

Seeded random LaTeX answers (numbers, pi, e, variables x, y, n, theta, under sin/cos/tan/log/ln/sqrt/exp,
powers, fractions, |.|, sums, products; nested up to 3 deep; every one within `math_limits`) are compared
with each ground truth of `GOLDS` (numbers, constants, expressions in x, a relation, an interval), twice:

- plain: math-verify's `verify(gold, answer)` as the verifier called it before the limits;
- ours: `check_answer` and `verify` under `limited()`, as the verifier calls it now.

sympy's cache is cleared before every call, so no call profits from an earlier one (the worst case; a
worker's cache makes repeats cheaper). Prints, per side, CPU time per comparison (median, p99, max), the
pairs the limits refused (scored `parse`) by reason with math-verify's verdicts on them, and every pair
where both sides gave a verdict and the verdicts differ -- the last line is `disagreements: <n>`.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import Counter

GOLDS = ["7", "-3", "\\frac{1}{2}", "0.25", "\\frac{\\sqrt{3}}{2}", "2\\pi", "x+1", "\\frac{x^2-1}{x+1}",
         "e^{-x^2}", "\\sin x", "2\\sqrt{x}", "\\ln x", "x = 3", "[0, 1)"]  # fmt: skip
ATOMS = ["2", "3", "7", "10", "x", "x", "y", "n", "\\theta", "\\pi", "e", "\\frac{1}{2}", "0.5"]
POWERS = ["2", "3", "-1", "x", "\\frac{1}{2}"]


def answer(rng: random.Random, depth: int = 0) -> str:
    if depth >= 3 or rng.random() < 0.25:
        return rng.choice(ATOMS)

    def a() -> str:
        return answer(rng, depth + 1)

    k = rng.randrange(16)
    if k == 0:
        return f"\\sin({a()})"
    if k == 1:
        return f"\\cos {a()}"
    if k == 2:
        return f"\\tan({a()})"
    if k == 3:
        return f"\\log_{{{rng.choice(['2', '3', '10'])}}}({a()})"
    if k == 4:
        return f"\\ln({a()})"
    if k == 5:
        return f"\\sqrt{{{a()}}}"
    if k == 6:
        return f"e^{{{a()}}}"
    if k == 7:
        return f"{{{a()}}}^{{{rng.choice(POWERS)}}}"
    if k == 8:
        return f"\\frac{{{a()}}}{{{a()}}}"
    if k == 9:
        return f"|{a()}|"
    if k == 10:
        return f"{a()} + {a()}"
    if k == 11:
        return f"{a()} - {a()}"
    if k == 12:
        return f"{a()} \\cdot {a()}"
    if k == 13:
        return f"({a()})({a()})"
    if k == 14:
        return f"\\sum_{{k=1}}^{{{rng.choice(['3', 'n'])}}} k^{{{rng.choice(['1', '2'])}}}"
    return f"{a()} = {a()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import logging

    logging.disable(logging.WARNING)  # math-verify's "timeout disabled" notes
    import sympy
    from math_verify import parse, verify

    from lit_triune.rewards.scoring import warm_up
    from lit_triune.rewards.text import AnswerError
    from lit_triune.rewards.verifiers.math import read_answer, read_gold
    from lit_triune.rewards.verifiers.math_compare import AnswerTooDear, check_answer, limited

    warm_up()
    rng = random.Random(args.seed)
    answers, seen = [], set()
    while len(answers) < args.answers:
        text = answer(rng)
        if text in seen:
            continue
        seen.add(text)
        try:
            read, config = read_answer(f"<answer>{text}</answer>")
        except AnswerError:  # refused before parsing (math_limits, several candidates): not compared here
            continue
        pred = parse(read, extraction_config=config, parsing_timeout=None)
        if pred:
            answers.append((text, pred))
    golds = [(g, read_gold(g).parsed) for g in GOLDS]

    def cpu(fn):  # -> (ms, result or the AnswerTooDear raised)
        sympy.core.cache.clear_cache()
        start = time.process_time()
        try:
            out = fn()
        except AnswerTooDear as err:
            out = err
        return (time.process_time() - start) * 1000, out

    def ours(gold, pred):
        check_answer(pred)
        with limited():
            return verify(gold, pred, timeout_seconds=None)

    plain_ms, ours_ms, refused, refused_verdicts, differ = [], [], Counter(), Counter(), []
    for gtext, gold in golds:
        for text, pred in answers:
            t_plain, v_plain = cpu(lambda: verify(gold, pred, timeout_seconds=None))  # noqa: B023
            t_ours, v_ours = cpu(lambda: ours(gold, pred))  # noqa: B023
            plain_ms.append((t_plain, gtext, text))
            ours_ms.append((t_ours, gtext, text))
            if isinstance(v_ours, AnswerTooDear):
                reason = re.sub(r"\d+|\([^)]*\)", "#", str(v_ours.args[0]))
                refused[reason] += 1
                refused_verdicts[v_plain] += 1
            elif v_ours != v_plain:
                differ.append((gtext, text, v_plain, v_ours))
    n = len(plain_ms)
    print(f"{len(answers)} answers x {len(golds)} ground truths = {n} comparisons (sympy cache cleared before each)")
    for name, rows in (("plain math-verify", plain_ms), ("with the limits", ours_ms)):
        ms = sorted(r[0] for r in rows)
        worst = max(rows)
        print(f"  {name:18s} CPU ms per comparison: median {ms[n // 2]:6.1f}  p99 {ms[int(0.99 * (n - 1))]:7.1f}  "
              f"max {worst[0]:7.1f} ({worst[1]!r} vs {worst[2]!r})")  # fmt: skip
    print(f"refused (scored parse): {sum(refused.values())}; math-verify's verdicts on them: {dict(refused_verdicts)}")
    for reason, count in refused.most_common():
        print(f"  {count:5d}  {reason}")
    for gtext, text, v_plain, v_ours in differ[:10]:
        print(f"  DIFFER: gold {gtext!r} answer {text!r}: math-verify {v_plain}, limited {v_ours}")
    print(f"disagreements: {len(differ)}")


if __name__ == "__main__":
    main()
