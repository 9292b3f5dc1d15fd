"""Imported only by the verifier pool's forkserver (its preload list), once, before it forks any worker.

It ties the forkserver's life to the trainer's (a SIGKILLed trainer takes it along, and with it the
workers, which die with the forkserver) and warms the rewards code, so every forked worker starts
with sympy, math-verify and their caches loaded (including the LaTeX parser's DFA for a grid of ~1,100 answer
shapes and the sympy modules `simplify` imports lazily, `_latex_parse.warm_up_parser`, ~9 s CPU once:
8.75 s in `benchmarks/verifier_worst_case.py`):
a replacement costs a fork. Last, everything loaded so far is moved out of the cyclic garbage collector's
reach (`gc.freeze`): a worker's full collections then scan only what it allocated itself (one took ~130 ms
of a completion's time over the inherited heap), and they no longer write to the pages it shares with
the forkserver.
"""

import gc

from lit_triune.rewards.worker import die_with_parent

die_with_parent()

import math_verify  # noqa: E402, F401
import sympy  # noqa: E402, F401

from lit_triune.rewards.scoring import warm_up  # noqa: E402

warm_up()

from lit_triune.rewards._latex_parse import warm_up_parser  # noqa: E402
from lit_triune.rewards.verifiers.math_compare import install as install_compare_limits  # noqa: E402

warm_up_parser()
install_compare_limits()

gc.collect()
gc.freeze()
