"""Imported only by the verifier pool's forkserver (its preload list), once, before it forks any worker.

It ties the forkserver's life to the trainer's (a SIGKILLed trainer takes it along, and with it the
workers, which die with the forkserver) and warms the rewards code, so every forked worker starts
with sympy, math-verify and their caches loaded: a replacement costs a fork.
"""

from lit_triune.rewards.worker import die_with_parent

die_with_parent()

import math_verify  # noqa: E402, F401
import sympy  # noqa: E402, F401

from lit_triune.rewards.scoring import warm_up  # noqa: E402

warm_up()
