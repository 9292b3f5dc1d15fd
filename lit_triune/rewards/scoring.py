"""`score()` / `score_batch()`: one sample's spec in, the total reward and its parts out, never an exception.

Total reward `R = accuracy_ratio * R_acc + format_ratio * R_fmt` (paper, Sec. 3); ratios default to
1.0 and 0.1 when the sample leaves them out (the released server's defaults). `compat="vtriune"`
routes to the re-implementation of the released reward server instead, whose total is normalised by
`accuracy_ratio + format_ratio`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lit_triune.rewards.budget import VerifierTimeout, time_budget
from lit_triune.rewards.format import format_reward
from lit_triune.rewards.registry import get_verifier, reward_ratio
from lit_triune.rewards.result import Context, Verdict, failed, make_result
from lit_triune.rewards.verifiers._common import parm

DEFAULT_BUDGET_S = 5.0
"""Time budget of one in-process verifier call (main thread only; the pool enforces its own)."""

COMPAT_MODES = (None, "vtriune")
DEFAULT_ACCURACY_RATIO, DEFAULT_FORMAT_RATIO = 1.0, 0.1


_WARM_UP = [
    ("<answer>0.5</answer>", {"verifier": "mathverify", "ground_truth": "\\frac{1}{2}"}, None),
    ("so \\boxed{2}", {"verifier": "mathverify", "ground_truth": "2"}, "vtriune"),
    ("<answer>[{'bbox_2d': [1, 1, 5, 5], 'label': 'a'}]</answer>",
     {"verifier": "detection", "ground_truth": "[{'bbox_2d': [1, 1, 5, 5], 'label': 'a'}]",
      "verifier_parm": {"det_reward_ratio": {"iou_max_label_first": 1.0, "map": 1.0}}}, None),
    ("\n<answer>\n[{'bbox_2d': [1, 1, 5, 5], 'label': 'a'}]\n</answer>",
     {"verifier": "detection", "ground_truth": "<answer>[{'bbox_2d': [1, 1, 5, 5], 'label': 'a'}]</answer>",
      "verifier_parm": {"det_reward_ratio": {"iou_max_label_first": 1.0, "map": 1.0}}}, "vtriune"),
]  # fmt: skip
_warmed = False


def warm_up() -> None:
    """Run the heavy code paths once with no time budget (idempotent).

    First calls import sympy / antlr modules and fill math-verify's regex caches; a budget expiring in
    the middle of an import leaves half-initialised modules behind and breaks later samples, so the
    first budgeted call and every pool worker (before it reports ready) warm up first.
    """
    global _warmed
    if _warmed:
        return
    _warmed = True
    for response, reward_model, compat in _WARM_UP:
        score_sample(response, reward_model, compat=compat, budget_s=None)


def _check_args(image_size: Any, iou_threshold: Any, compat: Any) -> None:
    if compat not in COMPAT_MODES:
        raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
    if image_size is not None:
        ok = isinstance(image_size, (tuple, list)) and len(image_size) == 2
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size):
            raise ValueError(f"image_size must be (height, width) positive ints or None, got {image_size!r}")
    if iou_threshold is not None and compat is None:
        if (
            isinstance(iou_threshold, bool)
            or not isinstance(iou_threshold, (int, float))
            or not 0.0 <= iou_threshold <= 1.0
        ):
            raise ValueError(f"iou_threshold must be a number in [0, 1] or None, got {iou_threshold!r}")


def score_sample(
    response: Any,
    reward_model: Any,
    *,
    image_size: tuple[int, int] | None = None,
    iou_threshold: float | None = None,
    compat: str | None = None,
    budget_s: float | None = DEFAULT_BUDGET_S,
) -> dict[str, Any]:
    """`score()` with an explicit time budget; what pool workers call."""
    name = str(reward_model.get("verifier")) if isinstance(reward_model, Mapping) else "?"
    try:
        _check_args(image_size, iou_threshold, compat)
        if not isinstance(reward_model, Mapping):
            raise ValueError(f"reward_model must be a dict, got {type(reward_model).__name__}")
    except ValueError as err:
        return make_result(name, 0.0, 0.0, 0.0, "spec", str(err))
    if not isinstance(response, str):
        response = "" if response is None else str(response)
    if budget_s:
        warm_up()
    image_size = tuple(image_size) if image_size is not None else None  # type: ignore[assignment]
    if compat == "vtriune":
        from lit_triune.rewards.vtriune import score_vtriune

        return score_vtriune(response, dict(reward_model), image_size, iou_threshold, budget_s)
    try:
        verifier = get_verifier(name)
        p = parm(reward_model)
        fmt = format_reward(response, p.get("format_reward", verifier.default_format))
        a = reward_ratio(reward_model, "accuracy_ratio", DEFAULT_ACCURACY_RATIO)
        f = reward_ratio(reward_model, "format_ratio", DEFAULT_FORMAT_RATIO)
    except (KeyError, ValueError) as err:
        return make_result(name, 0.0, 0.0, 0.0, "spec", str(err.args[0]) if err.args else repr(err))
    except Exception as err:  # e.g. a format function of a plugin raising
        return make_result(name, 0.0, 0.0, 0.0, "crash", f"{type(err).__name__}: {err}"[:500])
    ctx = Context(image_size=image_size, iou_threshold=iou_threshold, compat=compat)  # type: ignore[arg-type]
    try:
        with time_budget(budget_s):
            verdict = verifier.score(response, reward_model, ctx)
    except VerifierTimeout:
        verdict = failed("timeout", f"verifier {name!r} exceeded its {budget_s:g} s budget")
    except Exception as err:
        verdict = failed("crash", f"verifier {name!r} raised {type(err).__name__}: {err}"[:500])
    if not isinstance(verdict, Verdict):
        verdict = failed("crash", f"verifier {name!r} returned {type(verdict).__name__}, not Verdict")
    try:
        acc = float(verdict.accuracy)
    except (TypeError, ValueError, OverflowError):
        acc = math.nan
    if not 0.0 <= acc <= 1.0:  # NaN fails too: keeps every reward within [0, accuracy_ratio + format_ratio]
        verdict = failed("crash", f"verifier {name!r} returned accuracy {verdict.accuracy!r:.50}, not a number in [0, 1]")
        acc = 0.0
    if verdict.failure == "spec":  # an unusable sample earns nothing, format included: it is a data bug
        return make_result(name, 0.0, 0.0, 0.0, "spec", verdict.detail, verdict.scores, verdict.extras)
    return make_result(
        name, a * acc + f * fmt, acc, fmt, verdict.failure, verdict.detail, verdict.scores, verdict.extras
    )


def score(
    response: str,
    reward_model: dict,
    *,
    image_size: tuple[int, int] | None = None,
    iou_threshold: float | None = None,
    compat: str | None = None,
) -> dict:
    """Score one completion against its sample's `reward_model`; never raises.

    Args:
        response: the decoded completion.
        reward_model: the sample's `reward_model` field (`verifier`, `ground_truth`, ratios, `verifier_parm`).
        image_size: (height, width) of the image as the model saw it, after resizing; needed to convert
            predicted pixel boxes when the ground truth is in the 0-1000 frame.
        iou_threshold: IoU threshold for box rewards (the trainer passes the dynamic schedule's value);
            None means 0.5 (default mode) or the released 'average' over 0.5..0.99 (compat).
        compat: None, or "vtriune" for the released reward server's exact behaviour.

    Returns:
        dict with `reward`, `accuracy`, `format` (floats), `failure` (None, "timeout", "crash", "parse",
        "spec"), `detail` (why it failed), `verifier`, the standard sub-scores `iou`, `precision`,
        `recall`, `map`, `map50`, `map75` (NaN where not applicable) and the verifier's own extras.
    """
    return score_sample(
        response, reward_model, image_size=image_size, iou_threshold=iou_threshold, compat=compat
    )


def batch_image_sizes(
    responses: Sequence[str],
    reward_models: Sequence[dict],
    image_sizes: Sequence[tuple[int, int] | None] | None,
) -> list[tuple[int, int] | None]:
    """A batch's image sizes, one a response (None where none was given); a clear error when the lengths differ."""
    if len(responses) != len(reward_models) or (image_sizes is not None and len(image_sizes) != len(responses)):
        raise ValueError(
            f"responses ({len(responses)}), reward_models ({len(reward_models)}) and image_sizes "
            f"({'None' if image_sizes is None else len(image_sizes)}) must have the same length"
        )
    return list(image_sizes) if image_sizes is not None else [None] * len(responses)


def score_batch(
    responses: Sequence[str],
    reward_models: Sequence[dict],
    *,
    image_sizes: Sequence[tuple[int, int] | None] | None = None,
    iou_threshold: float | None = None,
    compat: str | None = None,
) -> list[dict]:
    """`score` over a batch in this process, in input order. Use `VerifierPool` to run it in parallel."""
    sizes = batch_image_sizes(responses, reward_models, image_sizes)
    return [
        score(r, rm, image_size=s, iou_threshold=iou_threshold, compat=compat)
        for r, rm, s in zip(responses, reward_models, sizes, strict=True)
    ]
