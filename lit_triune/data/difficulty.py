"""Difficulty filter: pass@k of a policy through the training rollout engine and verifiers.

Samples the policy always or never solves give GRPO no signal (all rewards in a group equal),
so the paper keeps those whose pass rate lies in a band.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from lit_triune.data.batch import PromptBuilder, SkipSample


def difficulty_filter(samples: Iterable[dict[str, Any]], engine: Any, score_batch: Callable[..., list[dict]],
                      builder: PromptBuilder, *, k: int = 8, min_pass: float = 0.125, max_pass: float = 0.875,
                      batch_size: int = 8, max_new_tokens: int = 64, temperature: float = 1.0, seed: int = 0,
                      ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(kept samples, report). pass rate = mean accuracy over k sampled completions; keep if in
    [min_pass, max_pass]. `engine` is a RolloutEngine, `score_batch` is `lit_triune.rewards.score_batch`.
    """
    from lit_triune.rollout.base import SamplingConfig

    if not 0.0 <= min_pass <= max_pass <= 1.0:
        raise ValueError(f"need 0 <= min_pass <= max_pass <= 1, got {min_pass}, {max_pass}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kept: list[dict[str, Any]] = []
    rates: dict[str, float] = {}
    report: dict[str, Counter] = defaultdict(Counter)
    pending: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def flush(batch_idx: int) -> None:
        items = [it for _, it in pending]
        sampling = SamplingConfig(n=k, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + batch_idx)
        rollout = engine.generate([it["prompt"] for it in items], [it["image"] for it in items], sampling)
        rms = [items[int(i)]["reward_model"] for i in rollout.prompt_index]
        sizes = [items[int(i)]["image_size"] for i in rollout.prompt_index]
        scores = score_batch(rollout.texts, rms, image_sizes=sizes)
        for p, (sample, item) in enumerate(pending):
            acc = [float(scores[r]["accuracy"]) for r in range(len(scores)) if int(rollout.prompt_index[r]) == p]
            rate = sum(acc) / max(len(acc), 1)
            rates[item["id"]] = rate
            src = sample["data_source"]
            if rate < min_pass:
                report["too_hard"][src] += 1
            elif rate > max_pass:
                report["too_easy"][src] += 1
            else:
                report["kept"][src] += 1
                kept.append(sample)
        pending.clear()

    n_batches = 0
    for sample in samples:
        try:
            pending.append((sample, builder.build(sample)))
        except SkipSample as err:
            report[f"skipped/{err.reason}"][sample["data_source"]] += 1
            continue
        if len(pending) == batch_size:
            flush(n_batches)
            n_batches += 1
    if pending:
        flush(n_batches)
    return kept, {"rules": {r: dict(c) for r, c in sorted(report.items())}, "pass_rates": rates}
