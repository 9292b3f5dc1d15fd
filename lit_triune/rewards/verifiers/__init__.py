"""Built-in verifiers; importing this package registers them.

The diagnostic `debug_sleep` / `debug_crash` (module `debug`) are not imported here: they are opt-in
(`registry.DIAGNOSTIC_MODULE`), so a data row naming them is an unknown verifier.
"""

from lit_triune.rewards.verifiers import counting, detection, grounding, math, ocr  # noqa: F401
