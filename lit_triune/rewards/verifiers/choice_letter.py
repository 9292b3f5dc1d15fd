"""Multiple-choice letters judged without sympy, with math-verify's verdicts.

A multiple-choice ground truth is one capital letter ('A'), and so is most of what a policy answers to it.
math-verify reads both as sympy symbols, then compares them: ~0.3 ms of parsing and sympy per completion
for what is string equality. Here a capital letter A-Z on both sides (optionally in `$...$` / `\\boxed{}`,
as `plain_number.unwrap` takes them off) is judged equal exactly when it is the same letter, which is
math-verify's verdict on every one of the 26 x 26 pairs in every answer layout
(tests/rewards/verifiers/test_choice_letter.py). Anything else -- a lower-case letter, '(A)', 'A.',
'\\text{A}', two letters -- returns None from `read_letter` and math-verify decides.
"""

from __future__ import annotations

import re

from lit_triune.rewards.verifiers.plain_number import unwrap

_LETTER = re.compile(r"[A-Z]")


def read_letter(text: str) -> str | None:
    """The capital letter `text` is (optionally in `$...$` / `\\boxed{}`), or None: then math-verify decides."""
    if len(text) > 40:
        return None
    inner = unwrap(text)
    return inner if _LETTER.fullmatch(inner) else None
