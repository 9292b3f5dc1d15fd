"""`ocr`: normalised exact match, or ANLS (`verifier_parm={"metric": "anls", "anls_threshold": 0.5}`).

Normalisation: Unicode NFKC, case-folded, whitespace collapsed, surrounding quotes and trailing
punctuation removed. The ground truth may be a list of acceptable strings; the best one counts.
The answer is the one `<answer>` block (required): two blocks, or an answer longer than
`MAX_OCR_CHARS`, are `parse` failures -- never cut to a prefix that might match.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from lit_triune.rewards.registry import Verifier, register_verifier
from lit_triune.rewards.result import Context, Verdict, failed
from lit_triune.rewards.text import AnswerError, answer_block, clip, single_answer_block
from lit_triune.rewards.verifiers._common import parm

MAX_OCR_CHARS = 2_000  # longer answers (after normalisation) are `parse` failures
METRICS = ("exact", "anls")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text[: MAX_OCR_CHARS * 4]).casefold()
    text = " ".join(text.split())
    return text.strip("\"'`“”‘’ ").rstrip(".,;:!?。")


def levenshtein(a: str, b: str) -> int:
    """Edit distance, bit-parallel (Myers 1999, Hyyrö 2001): O(len(b)) big-int steps, not O(len(a)·len(b))."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    m = len(b)  # the pattern is the shorter string: one bit per character
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask, high = (1 << m) - 1, 1 << (m - 1)
    pv, mv, dist = mask, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            dist += 1
        elif mh & high:
            dist -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return dist


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
        raise ValueError(f"ocr ground truth must be a string or a non-empty list of strings, got {gt!r:.200}")
    out = [normalize_text(b if (b := answer_block(g)) is not None else g) for g in items]
    for raw, norm in zip(items, out, strict=True):
        if not norm or len(norm) > MAX_OCR_CHARS:
            raise ValueError(
                f"ocr ground truth must be 1..{MAX_OCR_CHARS} characters after normalisation, got {raw!r:.200}"
            )
    return out


def _tau(p: Mapping[str, Any]) -> float:
    tau = p.get("anls_threshold", 0.5)
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0.0 < tau <= 1.0:
        raise ValueError(f"verifier_parm['anls_threshold'] must be a number in (0, 1], got {tau!r}")
    return float(tau)


@register_verifier("ocr")
class OcrVerifier(Verifier):
    def check(self, reward_model: Mapping[str, Any]) -> None:
        p = parm(reward_model)
        if p.get("metric", "exact") not in METRICS:
            raise ValueError(f"verifier_parm['metric'] must be one of {METRICS}, got {p.get('metric')!r}")
        _tau(p)
        _truths(reward_model)

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        try:
            self.check(reward_model)
            p, truths = parm(reward_model), _truths(reward_model)
        except ValueError as err:
            return failed("spec", str(err))
        try:
            block = single_answer_block(clip(response))
        except AnswerError as err:
            return Verdict(0.0, {"anls": 0.0, "exact": 0.0}, "parse", str(err))
        if block is None:
            return Verdict(0.0, {"anls": 0.0, "exact": 0.0}, "parse", "no <answer> block")
        pred = normalize_text(block)
        if len(pred) > MAX_OCR_CHARS:
            detail = f"answer has {len(pred)} characters after normalisation; at most {MAX_OCR_CHARS}"
            return Verdict(0.0, {"anls": 0.0, "exact": 0.0}, "parse", detail)
        exact = float(any(pred == t for t in truths))
        tau = _tau(p)
        score_anls = max(anls(pred, t, tau) for t in truths)
        acc = score_anls if p.get("metric", "exact") == "anls" else exact
        return Verdict(acc, {"anls": score_anls, "exact": exact})
