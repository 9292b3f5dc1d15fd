"""The paper's data filters, each rule counted per source so a report shows what it removed.

Per-sample rules run first; balancing rules (detection single:multi 1:2, counting class balance)
then subsample deterministically by seed among the survivors.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from lit_triune.boxes import NORMALIZED_MAX, BoxError, box_verifiers, read_box_spec

_MC = re.compile(r"(^|\n|\s)\(?[A-E][.):]\s|\b(options|choices)\s*:", re.I)
_TF = {"true", "false", "yes", "no"}
_BAD_CHARS = set("=[]();")
_ANSWER = re.compile(r"^\s*<answer>(.*)</answer>\s*$", re.S)


def _answer(rm: dict[str, Any]) -> str:
    gt = str(rm["ground_truth"])
    m = _ANSWER.match(gt)
    return (m.group(1) if m else gt).strip()


def _question(sample: dict[str, Any]) -> str:
    return " ".join(m["content"] for m in sample["prompt"] if m["role"] == "user")


def _boxes(sample: dict[str, Any], size: tuple[int, int] | None):
    spec = read_box_spec(sample["reward_model"])
    total = NORMALIZED_MAX * NORMALIZED_MAX if spec.normalized else (size[0] * size[1] if size else None)
    return spec.boxes, total


def sample_rules(sample: dict[str, Any], size: tuple[int, int] | None) -> str | None:
    """Name of the first per-sample rule that drops this sample, or None to keep it."""
    rm = sample["reward_model"]
    verifier = rm["verifier"]
    if verifier == "mathverify":
        ans = _answer(rm)
        if _MC.search(_question(sample)) or (len(ans) == 1 and ans.upper() in "ABCDE" and ans.isalpha()):
            return "reasoning/multiple_choice"
        if ans.lower().rstrip(".") in _TF:
            return "reasoning/true_false"
        if _BAD_CHARS & set(ans):
            return "reasoning/answer_chars"
        if len(ans) > 20:
            return "reasoning/answer_too_long"
    elif verifier in box_verifiers():
        try:
            boxes, total = _boxes(sample, size)
        except BoxError:
            return f"{verifier}/bad_boxes"
        if total and any(b.area > 0.5 * total for b in boxes):
            return f"{verifier}/box_over_half_image"
        if verifier == "detection" and max(Counter(b.label for b in boxes).values()) > 10:
            return "detection/over_10_boxes_per_category"
    elif verifier == "ocr":
        ans = _answer(rm)
        if not ans.isascii() or not re.search(r"[A-Za-z]", ans):
            return "ocr/not_english"
    return None


def image_size(sample: dict[str, Any]) -> tuple[int, int] | None:
    """(height, width) of the first image from its header only; None if unreadable or absent."""
    import io

    from PIL import Image

    if not sample.get("images"):
        return None
    img = sample["images"][0]
    if isinstance(img, Image.Image):
        return img.height, img.width
    try:
        data = img["bytes"] if isinstance(img, dict) else img
        with Image.open(io.BytesIO(data)) as im:
            return im.height, im.width
    except Exception:  # noqa: BLE001 - an unreadable image only disables the size-based rules
        return None


def filter_samples(samples: Iterable[dict[str, Any]], *, seed: int = 0,
                   image_size: Callable[[dict[str, Any]], tuple[int, int] | None] = image_size,
                   ) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """(kept samples, report) where report[rule][source] = dropped and report["kept"][source] = kept."""
    report: dict[str, dict[str, int]] = defaultdict(Counter)
    survivors: list[dict[str, Any]] = []
    for s in samples:
        rule = sample_rules(s, image_size(s))
        if rule is None:
            survivors.append(s)
        else:
            report[rule][s["data_source"]] += 1
    drop: set[int] = set()
    rng = random.Random(seed)
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(survivors):
        by_source[s["data_source"]].append(i)
    for source, idx in by_source.items():
        det = [i for i in idx if survivors[i]["reward_model"]["verifier"] == "detection"]
        single = [i for i in det if len(_boxes(survivors[i], None)[0]) == 1]
        multi = len(det) - len(single)
        if multi and len(single) > math.ceil(multi / 2):  # keep single:multi at 1:2
            cut = rng.sample(single, len(single) - math.ceil(multi / 2))
            drop.update(cut)
            report["detection/single_multi_balance"][source] += len(cut)
        classes: dict[str, list[int]] = defaultdict(list)
        for i in idx:
            if survivors[i]["reward_model"]["verifier"] == "counting":
                classes[_answer(survivors[i]["reward_model"])].append(i)
        if len(classes) > 1:  # cap each count value at the mean class size
            cap = math.ceil(sum(map(len, classes.values())) / len(classes))
            for members in classes.values():
                if len(members) > cap:
                    cut = rng.sample(members, len(members) - cap)
                    drop.update(cut)
                    report["counting/class_balance"][source] += len(cut)
    kept = [s for i, s in enumerate(survivors) if i not in drop]
    for s in kept:
        report["kept"][s["data_source"]] += 1
    return kept, {rule: dict(sorted(c.items())) for rule, c in sorted(report.items())}


def format_report(report: dict[str, dict[str, int]]) -> str:
    sources = sorted({s for c in report.values() for s in c})
    width = max([len(r) for r in report] + [8])
    lines = [f"{'rule':<{width}}  " + "  ".join(f"{s:>12}" for s in sources)]
    for rule, counts in report.items():
        lines.append(f"{rule:<{width}}  " + "  ".join(f"{counts.get(s, 0):>12}" for s in sources))
    return "\n".join(lines)
