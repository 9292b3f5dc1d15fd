"""Imported only by the verifier pool's forkserver (its preload list), once, before it forks any worker.

It ties the forkserver's life to the trainer's (a SIGKILLed trainer takes it along, and with it the
workers, which die with the forkserver) and warms the rewards code, so every forked worker starts
with sympy, math-verify and their caches loaded (including a LaTeX parser warmed on a corpus of shapes,
`_latex_parse.warm_up_parser`): a replacement costs a fork, and a first-seen answer shape no full parse.
"""

from lit_triune.rewards.worker import die_with_parent

die_with_parent()

import math_verify  # noqa: E402, F401
import sympy  # noqa: E402, F401

from lit_triune.rewards.scoring import warm_up  # noqa: E402

warm_up()

from lit_triune.rewards._latex_parse import warm_up_parser  # noqa: E402

warm_up_parser()  # ~20 s CPU once per run: ANTLR's DFA and sympy's lazy imports, inherited by every worker
