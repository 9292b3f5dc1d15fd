"""Silence math-verify's "Timeout is disabled" warning: we switch its timeouts off on purpose (see budget.py)."""

from __future__ import annotations

import logging


class _DropDisabledTimeout(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropDisabledTimeout())
