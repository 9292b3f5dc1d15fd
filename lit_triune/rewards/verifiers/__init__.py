"""Built-in verifiers; importing this package registers them."""

from lit_triune.rewards.verifiers import counting, debug, detection, grounding, math, ocr  # noqa: F401
