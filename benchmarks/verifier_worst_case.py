"""Worst-case verifier cost: generated completions (correct, padded, multi-candidate, hostile) through the pool.

Each completion is scored in a `VerifierPool` worker by a `timed` wrapper that runs the real
`score_sample` for the sample's verifier and measures wall and CPU time *inside the worker*, so
the figure excludes pipes and queueing. Prints the slowest completions under 1 KB, the cost of each named hostile LaTeX shape
(`NAMED_LATEX`: ellipses, fraction chains, `\\left(`, towers, factorials; `UNSEEN_LATEX`: shapes of the same kinds that
the forkserver's parser warm-up has not seen), the cost of `--symbolic` symbolic answers (what reaches sympy's
`simplify`) and of `--relations` relations against relations and symbolic finite sets (sympy's `solve`, set
comparison), the math verdicts beside plain math-verify's (`agreement`), and ends with

    max_ms_under_1kb: <worker wall ms>   (cpu <worker CPU ms>)

It also prints the forkserver's start-up CPU time and RSS and the workers' RSS (Linux /proc).

Issue 17 asks that no completion under 1 KB cost more than ~50 ms; on a shared machine wall time
includes other jobs' load, so CPU time is printed beside it. The last lines (`summary`) are the
must-show figures over every completion: the count above 50 ms, max and p99 (worker CPU and wall),
the range of rewards and how many fall outside [0, accuracy_ratio + format_ratio], exceptions
(`crash` / `timeout` results, workers killed), and padded / multi-candidate answers scored correct;
the load average is printed at the start and the end. `corpus()` and `summary()` are also what
tests/rewards/test_fuzz_verifiers.py checks (exceptions, bounds, padded answers; no time).

    python benchmarks/verifier_worst_case.py [--n 10000] [--symbolic 600] [--relations 600] [--workers 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VERIFIERS = ("mathverify", "counting", "ocr", "detection", "grounding")
KINDS = ("correct", "padded", "hostile")

_WORDS = {
    0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
    9: "nine", 10: "ten", 11: "eleven", 12: "twelve", 13: "thirteen", 14: "fourteen", 15: "fifteen",
    16: "sixteen", 17: "seventeen", 18: "eighteen", 19: "nineteen", 20: "twenty", 30: "thirty",
    40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety",
}  # fmt: skip
_LATEX_BITS = ["\\boxed{", "}", "{", "^", "10", "\\frac{", "(", ")", "x", "\\sqrt{", "!", "9" * 30, "\\infty",
               "\\cdot", "e", "-", "[", "]", "\\left(", "\\right)", "$", " ", "=", "or", "3", "\\binom{", "_"]  # fmt: skip
_OCR_WORDS = ["stop", "exit", "open", "hello world", "café", "24/7", "No. 5", "SALE 50%", "Main St.", "x"]


def words(n: int) -> str:
    """English words for 0 <= n < 1000, hyphenated ('twenty-one', 'one hundred five')."""
    if n < 20 or (n < 100 and n % 10 == 0):
        return _WORDS[n]
    if n < 100:
        return f"{_WORDS[n // 10 * 10]}-{_WORDS[n % 10]}"
    rest = n % 100
    return f"{_WORDS[n // 100]} hundred" + (f" {words(rest)}" if rest else "")


@dataclass
class Case:
    response: str
    reward_model: dict[str, Any]
    kind: str  # correct | padded | hostile
    image_size: tuple[int, int] | None = None
    why: str = ""
    tags: list[str] = field(default_factory=list)


def _wrap(rng: random.Random, answer: str) -> str:
    think = rng.choice(["", "<think>I look at the image.</think>", "<think>\nLet me count.\n</think>\n"])
    return f"{think}<answer>{answer}</answer>"


def _hostile(rng: random.Random) -> str:
    """Cheap strings that are dear to parse, all under 1 KB."""
    d = rng.randint(1, 14)
    opener, closer = rng.choice([("(", ")"), ("[", "]"), ("{", "}"), ("\\left(", "\\right)"), ("\\sqrt{", "}"),
                                 ("\\frac{1}{", "}"), ("x^{", "}"), ("9^{", "}"), ("\\sin(", ")")])  # fmt: skip
    body = rng.choice([
        opener * d + str(rng.randint(0, 99)) + closer * d,
        "^{".join(str(rng.randint(2, 99)) for _ in range(d)) + "}" * (d - 1),
        f"{rng.randint(10, 10**6)}!" + "!" * rng.randint(0, 2),
        "9" * rng.randint(19, 400),
        f"10^{{{rng.randint(100, 10**9)}}}",
        f"\\binom{{{rng.randint(10**3, 10**12)}}}{{{rng.randint(10, 10**6)}}}",
        "".join(rng.choice(_LATEX_BITS) for _ in range(rng.randint(1, 60))),
        "+".join(str(rng.randint(1, 9)) for _ in range(rng.randint(10, 200))),
        "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(0, 300))),
        " ".join(rng.choice(list(_WORDS.values()) + ["hundred", "thousand", "and", "dozen"]) for _ in range(rng.randint(2, 60))),
        "[" + ", ".join(str(rng.randint(-99, 9999)) for _ in range(rng.randint(0, 40))),
        "<answer>" * rng.randint(2, 60),
        "-" * rng.randint(1, 200) + str(rng.randint(0, 9)),
    ])  # fmt: skip
    form = rng.choice(["<answer>{}</answer>", "<answer>\\boxed{{{}}}</answer>", "\\boxed{{{}}}", "{}",
                       "<answer>${}$</answer>", "The final answer is ${}$", "<answer>{}"])  # fmt: skip
    return form.format(body)[:1000]


def _math(rng: random.Random, kind: str) -> Case:
    k = rng.randint(0, 500)
    gold, said = rng.choice([(str(k), str(k)), (f"\\frac{{{k}}}{{{k + 1}}}", f"\\frac{{{k}}}{{{k + 1}}}"),
                             (f"\\boxed{{{k}}}", str(k)), (f"2^{{{k % 20}}}", str(2 ** (k % 20)))])  # fmt: skip
    rm = {"verifier": "mathverify", "ground_truth": gold}
    if kind == "hostile":
        return Case(_hostile(rng), rm, kind)
    w = str(rng.choice([v for v in (0, 1, 2, k + 1, k + 7, -k - 1) if str(v) != said]))
    if kind == "correct":
        form = rng.choice(["{}", "\\boxed{{{}}}", "${}$", "The answer is {}"])
        return Case(_wrap(rng, form.format(said)) if rng.random() < 0.85 else f"so \\boxed{{{said}}}", rm, kind)
    a, b = (said, w) if rng.random() < 0.5 else (w, said)
    pad = rng.choice([
        f"<answer>{a} {b}</answer>", f"<answer>{a} or {b}</answer>", f"<answer>{a}, {b}</answer>",
        f"<answer>\\boxed{{{a}}}\\boxed{{{b}}}</answer>", f"<answer>${a}$ ${b}$</answer>",
        f"<answer>{a}</answer><answer>{b}</answer>", f"<answer>The answer is {a} or maybe {b}</answer>",
        f"<answer>x = {a} or x = {b}</answer>", f"\\boxed{{{a}}} or \\boxed{{{b}}}", f"<answer>{a}; {b}</answer>",
        f"<answer>{a} \\text{{ or }} {b}</answer>", f"<answer>{a}\n{b}</answer>", f"<answer>\\boxed{{{a}}} {b}</answer>",
        f"<answer>${a}$ or {b}</answer>", f"<answer>{a} \\quad {b}</answer>", f"<answer>{a}\\ {b}</answer>",
    ])  # fmt: skip
    return Case(pad, rm, kind, why="two candidates")


def _counting(rng: random.Random, kind: str) -> Case:
    c = rng.randint(0, 120)
    rm = {"verifier": "counting", "ground_truth": rng.choice([c, str(c), words(c)])}
    if kind == "hostile":
        return Case(_hostile(rng), rm, kind)
    if kind == "correct":
        said = rng.choice([str(c), words(c), words(c).replace("-", " ")])
        form = rng.choice(["{}", "There are {} shapes.", "{}."])
        return Case(_wrap(rng, form.format(said)), rm, kind)
    w = rng.choice([v for v in (0, 1, 2, c + 1, c + 10, 12) if v != c])
    s, sw = rng.choice([(str(c), str(w)), (words(c), words(w)), (str(c), words(w)), (words(c), str(w))])
    a, b = (s, sw) if rng.random() < 0.5 else (sw, s)
    pads = [f"{a} {b}", f"{a} or {b}", f"{a}, {b}", f"{a} ({b})", f"{a}-{b}", f"{a} and {b}", f"{a}\n{b}"]
    if c >= 2:  # assembled from pieces: 'three two' for 5, 'one twenty' for 21 (a unit never starts a longer phrase)
        x = rng.randint(1, min(9, c - 1))
        pads.append(f"{words(x)} {words(c - x)}")
    if c % 12 == 0 and 12 <= c <= 108:
        pads.append(f"{words(c // 12)} dozen")
    answer = rng.choice(pads)
    if rng.random() < 0.15:
        return Case(f"<answer>{s}</answer><answer>{sw}</answer>", rm, kind, why="two blocks")
    return Case(_wrap(rng, answer), rm, kind, why="two numbers / pieces")


def _ocr(rng: random.Random, kind: str) -> Case:
    gt = rng.choice(_OCR_WORDS) + ("" if rng.random() < 0.5 else f" {rng.randint(0, 999)}")
    truths: Any = gt if rng.random() < 0.7 else [gt, gt.upper() + " alt"]
    rm = {"verifier": "ocr", "ground_truth": truths, "verifier_parm": {"metric": rng.choice(["exact", "anls"])}}
    if kind == "hostile":
        return Case(_hostile(rng), rm, kind)
    if kind == "correct":
        return Case(_wrap(rng, rng.choice([gt, gt.upper(), f' "{gt}" ', f"{gt}."])), rm, kind)
    other = rng.choice([w for w in _OCR_WORDS if w != gt] + ([truths[1]] if isinstance(truths, list) else []))
    a, b = (gt, other) if rng.random() < 0.5 else (other, gt)
    pad = rng.choice([f"<answer>{a} {b}</answer>", f"<answer>{a} / {b}</answer>", f"<answer>{a}\n{b}</answer>",
                      f"<answer>{a}</answer><answer>{b}</answer>", f"<answer>{gt} {gt}</answer>",
                      f"<answer>{a} or {b}</answer>", f"<answer>{gt}" + " pad" * rng.randint(1, 300) + "</answer>"])  # fmt: skip
    return Case(pad, rm, kind, why="two candidates")


def _box(rng: random.Random, size: int = 100) -> list[int]:
    x1, y1 = rng.randint(0, size - 20), rng.randint(0, size - 20)
    return [x1, y1, rng.randint(x1 + 10, size), rng.randint(y1 + 10, size)]


def _detection(rng: random.Random, kind: str) -> Case:
    gts = [(_box(rng), rng.choice(["dog", "cat"])) for _ in range(rng.randint(1, 3))]
    gt = "[" + ", ".join(f"{{'bbox_2d': {b}, 'label': '{lab}'}}" for b, lab in gts) + "]"
    rm = {"verifier": "detection", "ground_truth": f"<answer>\n{gt}\n</answer>",
          "verifier_parm": {"det_reward_ratio": {"iou_max_label_first": 1.0, "iou_completeness": 0.3, "map": 1.0}}}  # fmt: skip
    if kind == "hostile":
        return Case(_hostile(rng), rm, kind, image_size=(100, 100))
    if kind == "correct":
        return Case(_wrap(rng, gt), rm, kind, image_size=(100, 100))
    extra = rng.choice([gts[0], (_box(rng), gts[0][1])])
    padded = "[" + ", ".join(f"{{'bbox_2d': {b}, 'label': '{lab}'}}" for b, lab in [*gts, extra]) + "]"
    return Case(_wrap(rng, padded), rm, kind, image_size=(100, 100), why="an extra box")


def _grounding(rng: random.Random, kind: str) -> Case:
    box = _box(rng)
    rm = {"verifier": "grounding", "ground_truth": str(box)}
    if kind == "hostile":
        return Case(_hostile(rng), rm, kind, image_size=(100, 100))
    if kind == "correct":
        return Case(_wrap(rng, str(box)), rm, kind, image_size=(100, 100))
    other = _box(rng)
    return Case(_wrap(rng, f"{box} {other}"), rm, kind, image_size=(100, 100), why="two boxes")


_MAKERS = {"mathverify": _math, "counting": _counting, "ocr": _ocr, "detection": _detection, "grounding": _grounding}


# named cheap-input / dear-score LaTeX shapes (issue 17 item 5), each scored once in a worker and printed by name
NAMED_LATEX = [
    "3 \\cdots 4", "3 \\ldots 4", "1, 2, \\ldots, 9", "1 + 2 + \\cdots + 9", "a_1 a_2 \\cdots a_n",
    " \\cdots ".join("123456"), "\\cdots" * 20, "\\ldots" * 20, "\\frac{1}{2}" * 8, "\\frac{\\frac{\\frac{1}{2}}{2}}{2}",
    "\\left(" * 3 + "1" + "\\right)" * 3, "\\left(1\\right)" * 6, "x^{x^{x}}", "2^2^2^2^2^2", "9^{9^{9}}", "5!!!!",
    "3!4!5!6!7!", "\\sqrt{\\sqrt{\\sqrt{2}}}", "\\boxed{50^{61}}", "(((75)))", "\\boxed{{{11}}}", "e^{-x^2}",
    "\\frac{\\sqrt{3}}{2}", "|||x|||", "\\log_{3}(x+1) - \\tan\\theta", "\\lim_{x \\to 0} \\frac{\\sin x}{x}",
    "\\sum_{k=1}^{n} k^2", "\\boxed{((((((((((((2))))))))))))}",
]  # fmt: skip


# the same kinds of shape, none of them in the forkserver's warm-up grid (`_latex_parse.shapes()`, which holds
# several of NAMED_LATEX): what a construct first seen in a fresh worker costs
UNSEEN_LATEX = [
    "y^{z^{w}}", "b_{2} b_{3} \\ldots b_{k}", "\\log_{5}(y-2) + \\cot\\phi", "\\arcsin(\\frac{1}{3})", "\\{\\{3\\}\\}",
    "\\dfrac{\\dfrac{5}{3}}{\\dfrac{2}{7}}", "\\sqrt[4]{\\sqrt[3]{81}}", "\\overline{0.\\overline{3}}", "\\lfloor 7.5 \\rfloor",
    "\\cosh(\\ln 2) \\cdot \\sec 0", "\\operatorname{lcm}(3, 7)", "7 \\pmod{10}", "\\binom{7}{1}^{1}", "\\tfrac{14}{2}",
    "\\left\\lceil 6.2 \\right\\rceil", "\\mathbf{7}", "7\\,\\text{units}^{2}", "\\exp(\\log 7)",
]  # fmt: skip


def named_cases() -> list[Case]:
    return [Case(f"<answer>{t}</answer>", {"verifier": "mathverify", "ground_truth": "7", "accuracy_ratio": 1.0,
                                          "format_ratio": 0.1}, "hostile", why="named")
            for t in NAMED_LATEX + UNSEEN_LATEX]  # fmt: skip


def symbolic_cases(n: int = 600, seed: int = 0) -> list[Case]:
    """`n` symbolic answers (benchmarks/math_compare.py's generator: sin, log, sums, fractions, |.| of numbers,
    constants and variables, nested 3 deep) against its symbolic and numeric ground truths: what reaches
    sympy's `simplify` / `solve`, the dear part of math-verify's comparison."""
    from math_compare import GOLDS, answer

    rng = random.Random(seed)
    return [Case(f"<answer>{answer(rng)}</answer>", {"verifier": "mathverify", "ground_truth": rng.choice(GOLDS),
                                                    "accuracy_ratio": 1.0, "format_ratio": 0.1}, "symbolic")
            for _ in range(n)]  # fmt: skip


def relation_cases(n: int = 600, seed: int = 0) -> list[Case]:
    """`n` cases, four in five a relation against a relation (benchmarks/relation_cases.py: lines, planes, quadratics,
    circles, `a^2 + b^2 = c^2`, inequalities, answered rearranged, scaled, swapped, perturbed or by another relation:
    what reaches sympy's `solve`), one in five a finite set with symbolic elements against a finite set of numbers
    or against one with a symbol (sympy's symmetric difference, math-verify's element-wise comparison)."""
    from math_compare import answer
    from relation_cases import pair

    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        if rng.random() < 0.8:  # noqa: PLR2004
            gold, said, _how = pair(rng)
            form = rng.choice(["<answer>{}</answer>", "<answer>${}$</answer>", "<answer>\\boxed{{{}}}</answer>"])
            response = form.format(said)
        else:
            numbers = [str(rng.randint(-5, 9)) for _ in range(rng.randint(1, 3))]
            gold = "\\{" + ", ".join(rng.choice([numbers, [*numbers[:-1], "x"]])) + "\\}"
            elements = [answer(rng) if rng.random() < 0.6 else str(rng.randint(-5, 9)) for _ in range(rng.randint(1, 3))]  # noqa: PLR2004
            response = "<answer>\\{" + ", ".join(elements) + "\\}</answer>"
        cases.append(Case(response, {"verifier": "mathverify", "ground_truth": gold, "accuracy_ratio": 1.0,
                                     "format_ratio": 0.1}, "relation"))  # fmt: skip
    return cases


def plain_math_verify(case: Case) -> bool | None:
    """math-verify's verdict, without the comparison limits, on what the verifier reads (None: the answer is
    refused before parsing -- several candidates, `math_limits` -- the same way with or without them)."""
    from math_verify import parse, verify

    from lit_triune.rewards.text import AnswerError
    from lit_triune.rewards.verifiers.math import read_answer, read_gold

    gold = read_gold(str(case.reward_model["ground_truth"])).parsed
    try:
        text, config = read_answer(case.response)
    except AnswerError:
        return None
    pred = parse(text, extraction_config=config, parsing_timeout=None)
    return bool(pred) and verify(gold, pred, timeout_seconds=None)


def corpus(n: int = 10_000, seed: int = 0) -> list[Case]:
    """`n` seeded cases, evenly over verifiers; per verifier 20 % correct, 40 % padded, 40 % hostile."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        verifier = VERIFIERS[i % len(VERIFIERS)]
        kind = rng.choices(KINDS, weights=(0.2, 0.4, 0.4))[0]
        case = _MAKERS[verifier](rng, kind)
        case.reward_model.setdefault("accuracy_ratio", rng.choice([1.0, 1.0, 0.5, 2.0]))
        case.reward_model.setdefault("format_ratio", rng.choice([0.1, 0.5, 0.0]))
        cases.append(case)
    return cases


# ----------------------------------------------------------------------------- the timed wrapper
def _register_timed() -> None:
    from lit_triune.rewards import Verdict, register_verifier
    from lit_triune.rewards.scoring import score_sample

    @register_verifier("timed", replace=True)
    def timed(response: str, reward_model: Mapping[str, Any], ctx: Any) -> Verdict:
        inner = reward_model["verifier_parm"]["inner"]
        wall, cpu = time.perf_counter(), time.process_time()
        out = score_sample(response, inner, image_size=ctx.image_size, iou_threshold=ctx.iou_threshold, budget_s=None)
        wall, cpu = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
        return Verdict(out["accuracy"], {"worker_ms": wall, "worker_cpu_ms": cpu, "inner_reward": out["reward"]},
                       out["failure"], out["detail"])  # fmt: skip


_register_timed()  # on import: the pool's workers import this module (imports=...)


def _proc_fields(pid: int) -> list[str]:
    text = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - one read
    return text[text.rindex(")") + 2 :].split()  # state ppid ... utime(11) stime(12)


def _forkserver_pid() -> int | None:
    """This process's child that runs multiprocessing's forkserver (Linux /proc), or None."""
    import os

    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(_proc_fields(int(name))[1]) == os.getpid():
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        if b"forkserver" in f.read():
                            return int(name)
            except (OSError, IndexError, ValueError):
                continue
    return None


def _cpu_s(pid: int) -> float:
    import os

    fields = _proc_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(f.read().split("VmRSS:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--symbolic", type=int, default=600, help="symbolic answers (symbolic_cases) after the corpus")
    parser.add_argument("--relations", type=int, default=600,
                        help="relations against relations and symbolic finite sets (relation_cases) after those")
    args = parser.parse_args()

    from lit_triune.rewards import VerifierPool
    from lit_triune.rewards._latex_parse import shapes

    assert not set(UNSEEN_LATEX) & set(shapes()), "an UNSEEN_LATEX shape is in the warm-up grid"
    cases = corpus(args.n, args.seed)
    named = named_cases()
    symbolic = symbolic_cases(args.symbolic, args.seed)
    relations = relation_cases(args.relations, args.seed)
    cases = named + cases + symbolic + relations  # named first: each reaches a worker that has seen little else
    rms = [{"verifier": "timed", "format_ratio": 0.0, "verifier_parm": {"inner": c.reward_model}} for c in cases]
    import os

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    start = time.perf_counter()
    with VerifierPool(num_workers=args.workers, timeout_s=args.timeout, imports=("verifier_worst_case",)) as pool:
        assert pool.wait_ready(120), "pool workers did not start"
        ready = time.perf_counter() - start
        server = _forkserver_pid()
        server_cpu, server_rss = (_cpu_s(server), _rss_mb(server)) if server else (float("nan"), float("nan"))
        rss_ready = [_rss_mb(pid) for pid in pool.worker_pids()]
        out = pool.map([c.response for c in cases], rms, [c.image_size for c in cases])
        counts = pool.failure_counts()
        rss_end = [_rss_mb(pid) for pid in pool.worker_pids()]
    elapsed = time.perf_counter() - start
    print(f"pool ready after {ready:.1f} s; forkserver start {server_cpu:.2f} s CPU, RSS {server_rss:.0f} MB; worker RSS "
          f"{', '.join(f'{r:.0f}' for r in rss_ready)} MB at ready, {', '.join(f'{r:.0f}' for r in rss_end)} MB at the end")
    rows = []
    for case, res in zip(cases, out, strict=True):
        ms = res.get("worker_ms", float("nan"))
        rows.append((ms, res.get("worker_cpu_ms", float("nan")), case, res))
    small = [r for r in rows if len(r[2].response.encode()) < 1024]
    unmeasured = [r for r in rows if r[0] != r[0]]  # NaN: the pool killed the worker (hard timeout)
    print(f"{len(cases)} completions, {len(small)} under 1 KB, {args.workers} workers, {elapsed:.1f} s "
          f"({len(cases) / elapsed:.0f}/s); pool failures: {counts.get('timed', {})}")  # fmt: skip
    for verifier in VERIFIERS:
        mine = sorted((r for r in small if r[2].reward_model["verifier"] == verifier and r[0] == r[0]),
                      key=lambda r: r[0])  # fmt: skip
        if mine:
            p99 = mine[int(0.99 * (len(mine) - 1))][0]
            print(f"  {verifier:10s} n={len(mine):5d}  median {mine[len(mine) // 2][0]:7.2f} ms  p99 {p99:7.2f} ms  "
                  f"max {mine[-1][0]:7.1f} ms (cpu {max(r[1] for r in mine):7.1f} ms)")  # fmt: skip
    print("slowest under 1 KB (worker wall ms, cpu ms, verifier, failure, completion):")
    for ms, cpu, case, res in sorted((r for r in small if r[0] == r[0]), key=lambda r: -r[0])[:8]:
        print(f"  {ms:8.1f} {cpu:8.1f}  {case.reward_model['verifier']:10s} {res['failure']!s:7s} {case.response[:70]!r}")
    if unmeasured:
        print(f"killed by the pool's hard timeout: {len(unmeasured)}, e.g. {unmeasured[0][2].response[:70]!r}")
    print("named LaTeX shapes (worker wall ms, cpu ms, failure, answer):")
    for i, (ms, cpu, case, res) in enumerate(rows[: len(named)]):
        seen = "unseen" if i >= len(NAMED_LATEX) else "      "
        print(f"  {ms:8.1f} {cpu:8.1f}  {seen} {res['failure']!s:7s} {case.response[8:-9]!r}")
    sym = [r for r in rows if r[2].kind == "symbolic" and r[0] == r[0]]
    rest = [r for r in small if r[2].kind not in ("symbolic", "relation") and r[0] == r[0]]
    print(f"  corpus and named shapes, all verifiers: n={len(rest)}  max cpu {max(r[1] for r in rest):7.1f} ms")
    if sym:
        over = sum(r[1] > 50 for r in sym)  # noqa: PLR2004 - issue 17's figure
        print(f"  symbolic   n={len(sym):5d}  max {max(r[0] for r in sym):7.1f} ms (cpu {max(r[1] for r in sym):7.1f} ms), "
              f"{over} above 50 ms CPU")
    rel = [r for r in rows if r[2].kind == "relation" and r[0] == r[0]]
    if rel:
        over = sum(r[1] > 50 for r in rel)  # noqa: PLR2004 - issue 17's figure
        print(f"  relations  n={len(rel):5d}  max {max(r[0] for r in rel):7.1f} ms (cpu {max(r[1] for r in rel):7.1f} ms), "
              f"{over} above 50 ms CPU")
    agreement(rows)
    measured = [r for r in small if r[0] == r[0]]
    print(f"max_ms_under_1kb: {max(r[0] for r in measured):.1f}   (cpu {max(r[1] for r in measured):.1f})")
    inner = [(ms, cpu, case, _inner(res)) for ms, cpu, case, res in rows]
    print_summary(summary(inner))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _inner(res: dict[str, Any]) -> dict[str, Any]:
    """The scored verifier's own result from the `timed` wrapper's, which carries its failure (a killed worker: the
    pool's failure result)."""
    if "inner_reward" not in res:
        return {"reward": res["reward"], "accuracy": res["accuracy"], "failure": res["failure"] or "killed"}
    return {"reward": res["inner_reward"], "accuracy": res["accuracy"], "failure": res["failure"]}


CORRECT = 1.0 - 1e-9  # detection's weighted sum of 1.0s can come out as 0.9999999999999999
OVER_MS = 50.0  # issue 17's figure


def summary(rows: list[tuple[float, float, Case, dict[str, Any]]]) -> dict[str, Any]:
    """The must-show figures over (worker wall ms, worker CPU ms, case, result) rows: timing over the completions
    under 1 KB (NaN times -- a worker killed -- are counted as such), the rest over all of them. `result` is the
    verifier's own result dict (`reward`, `accuracy`, `failure`), as score_sample returns it."""
    small = [r for r in rows if len(r[2].response.encode()) < 1024]
    timed = [r for r in small if r[0] == r[0]]
    walls = sorted(r[0] for r in timed)
    cpus = sorted(r[1] for r in timed)
    rewards = [r[3]["reward"] for r in rows]
    out_of_bounds = [r for r in rows if not 0.0 <= r[3]["reward"] <= r[2].reward_model.get("accuracy_ratio", 1.0)
                     + r[2].reward_model.get("format_ratio", 0.1)]  # fmt: skip
    failures: dict[str, int] = {}
    for r in rows:
        failures[str(r[3]["failure"])] = failures.get(str(r[3]["failure"]), 0) + 1
    padded = [r for r in rows if r[2].kind == "padded"]
    correct = [r for r in rows if r[2].kind == "correct"]

    def p99(xs: list[float]) -> float:
        return xs[int(0.99 * (len(xs) - 1))] if xs else float("nan")

    return {
        "completions": len(rows),
        "verifiers": sorted({r[2].reward_model["verifier"] for r in rows}),
        "under_1kb": len(small),
        "killed": len(small) - len(timed),
        "over_50ms_cpu": sum(c > OVER_MS for c in cpus),
        "over_50ms_wall": sum(w > OVER_MS for w in walls),
        "max_cpu": cpus[-1] if cpus else float("nan"),
        "max_wall": walls[-1] if walls else float("nan"),
        "p99_cpu": p99(cpus),
        "p99_wall": p99(walls),
        "reward_min": min(rewards),
        "reward_max": max(rewards),
        "out_of_bounds": len(out_of_bounds),
        "exceptions": failures.get("crash", 0) + failures.get("timeout", 0),
        "failures": failures,
        "padded": len(padded),
        "padded_correct": sum(r[3]["accuracy"] >= CORRECT for r in padded),
        "correct": len(correct),
        "correct_unpaid": sum(r[3]["accuracy"] < CORRECT for r in correct),
    }


def print_summary(s: dict[str, Any]) -> None:
    print(f"summary: {s['completions']} completions through {', '.join(s['verifiers'])}; {s['under_1kb']} under 1 KB")
    print(f"  above 50 ms (worker): {s['over_50ms_cpu']} CPU, {s['over_50ms_wall']} wall; killed by the pool: {s['killed']}")
    print(f"  max: {s['max_cpu']:.1f} ms CPU, {s['max_wall']:.1f} ms wall; p99: {s['p99_cpu']:.1f} ms CPU, "
          f"{s['p99_wall']:.1f} ms wall")  # fmt: skip
    print(f"  rewards: [{s['reward_min']:.3f}, {s['reward_max']:.3f}], outside [0, accuracy_ratio + format_ratio]: "
          f"{s['out_of_bounds']}")  # fmt: skip
    print(f"  exceptions (crash / timeout results): {s['exceptions']}; results by failure: {s['failures']}")
    print(f"  padded / multi-candidate scored correct: {s['padded_correct']} of {s['padded']}; "
          f"correct answers not paid: {s['correct_unpaid']} of {s['correct']}")  # fmt: skip


def agreement(rows: list[tuple[float, float, Case, dict[str, Any]]]) -> None:
    """Verdicts of the math completions against plain math-verify (run here, in this process, without the
    comparison limits of verifiers/math_compare.py): where the verifier gave a verdict they must agree; where a
    comparison limit refused the answer (`parse`) math-verify's verdict is counted."""
    same = differ = limited = refused_before = 0
    limited_true: list[str] = []
    for _, _, case, res in rows:
        if case.reward_model["verifier"] != "mathverify":
            continue
        plain = plain_math_verify(case)
        if plain is None:
            refused_before += 1  # the same refusal with or without the comparison limits
            continue
        ours = res["failure"]
        if ours is None:
            if (res["accuracy"] > 0) == plain:
                same += 1
            else:
                differ += 1
                print(f"  DIFFER: gold {case.reward_model['ground_truth']!r} {case.response!r}: math-verify {plain}")
        elif ours == "parse" and (res["detail"] or "").startswith("no answer read"):
            same += not plain  # math-verify's parse found nothing either: False both ways
            differ += bool(plain)
        elif ours == "parse":
            limited += 1  # read_answer passed, so a comparison limit (math_compare) refused it
            if plain:
                limited_true.append(case.response)
        else:
            differ += 1
            print(f"  FAILED ({ours}): {case.response!r}: math-verify {plain}")
    print(f"verdicts vs plain math-verify (math completions): {same} agree, {differ} differ; {refused_before} "
          f"refused before parsing either way; {limited} refused by a comparison limit (scored parse), of which "
          f"math-verify paid {len(limited_true)}" + (f", e.g. {limited_true[:3]!r}" if limited_true else ""))


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])  # workers import this module by name
    main()
