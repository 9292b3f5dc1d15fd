"""`ocr`: normalised exact match, or ANLS (`verifier_parm={"metric": "anls", "anls_threshold": 0.5}`).

Normalisation: Unicode NFKC, case-folded, whitespace collapsed, surrounding quotes and trailing
punctuation removed. The ground truth may be a list of acceptable strings; the best one counts.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import Context, Verdict, failed
from lit_triune.rewards.text import answer_block, clip
from lit_triune.rewards.verifiers._common import parm

MAX_OCR_CHARS = 2_000  # edit distance is quadratic; longer strings are cut
METRICS = ("exact", "anls")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text[: MAX_OCR_CHARS * 2]).casefold()
    text = " ".join(text.split())
    return text.strip("\"'`“”‘’ ").rstrip(".,;:!?。")[:MAX_OCR_CHARS]


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def anls(pred: str, gt: str, tau: float = 0.5) -> float:
    """1 - normalised edit distance when that distance is below tau, else 0 (Biten et al. 2019)."""
    if not pred and not gt:
        return 1.0
    nl = levenshtein(pred, gt) / max(len(pred), len(gt))
    return 1.0 - nl if nl < tau else 0.0


def _truths(reward_model: Mapping[str, Any]) -> list[str]:
    gt = reward_model.get("ground_truth", reward_model.get("answer"))
    items = gt if isinstance(gt, (list, tuple)) else [gt]
    if not items or not all(isinstance(g, str) for g in items):
        raise ValueError(f"ocr ground truth must be a string or a list of strings, got {gt!r}")
    return [normalize_text(b if (b := answer_block(g)) is not None else g) for g in items]


@register_verifier("ocr")
class OcrVerifier(Verifier):
    def check(self, reward_model: Mapping[str, Any]) -> None:
        p = parm(reward_model)
        if p.get("metric", "exact") not in METRICS:
            raise ValueError(f"verifier_parm['metric'] must be one of {METRICS}, got {p.get('metric')!r}")
        _truths(reward_model)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        try:
            self.check(reward_model)
            p, truths = parm(reward_model), _truths(reward_model)
        except ValueError as err:
            return failed("spec", str(err))
        block = answer_block(clip(response))
        if block is None:
            return Verdict(0.0, {"anls": 0.0, "exact": 0.0}, "parse", "no <answer> block")
        pred = normalize_text(block)
        exact = float(any(pred == t for t in truths))
        tau = float(p.get("anls_threshold", 0.5))
        score_anls = max(anls(pred, t, tau) for t in truths)
        acc = score_anls if p.get("metric", "exact") == "anls" else exact
        return Verdict(acc, {"anls": score_anls, "exact": exact})
