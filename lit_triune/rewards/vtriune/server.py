"""`compat="vtriune"`: one sample scored the way the released V-Triune reward pipeline scored it.

Behaviour reproduced (see NOTICE): what verl's `RemoteRewardManager` sends and what the server's
`judge_reward` does with it. Only `mathverify` and `detection` exist there. The verifier is built
from `verifier_parm`, and a key its constructor does not take raises. The reward is
`acc * a/(a+f) + fmt * f/(a+f)` with a = accuracy_ratio (default 1.0) and f = format_ratio (default
0.1). Anything that raises before both scores exist scores 0 everywhere; a failure in the final
weighting keeps accuracy and format and zeroes only the reward.
"""

from __future__ import annotations

from typing import Any

from lit_triune.boxes import Box, to_pixels, verifier_parm
from lit_triune.rewards.budget import VerifierTimeout, time_budget
from lit_triune.rewards.result import make_result
from lit_triune.rewards.vtriune import detection as det
from lit_triune.rewards.vtriune import math as mth
from lit_triune.rewards.vtriune.released_boxes import detection_format

VERIFIERS = ("mathverify", "detection")
CONSTRUCTOR_KEYS = frozenset(  # what the server's verifier constructor accepts
    ("is_training", "step", "total_steps", "image_path", "image_grid_thw", "verifier_style")
    + ("det_verifier_normalized", "det_reward_ratio")
)
_DETAIL = {
    None: None,
    "timeout": "released verifier exceeded the time budget",
    "parse": "the released parser read no answer from the response (scored as the server does)",
    "spec": "the released parser read no ground truth (scored as the server does)",
}


def _constructor_args(reward_model: dict[str, Any], image_size: tuple[int, int] | None) -> dict[str, Any]:
    """`verifier_parm` plus what the trainer injects; TypeError for keys the constructor would reject."""
    args = {"step": 0, "total_steps": 1, **verifier_parm(reward_model), "is_training": True}
    if image_size is not None:
        args["image_grid_thw"] = [(1, int(image_size[0]), int(image_size[1]))]
    unexpected = sorted(set(args) - CONSTRUCTOR_KEYS)
    if unexpected:
        raise TypeError(f"released verifier got unexpected verifier_parm keys {unexpected}")
    return args


def _view_boxes(pred: list, gt: list, args: dict[str, Any]) -> dict[str, list]:
    """Boxes for image views: in pixels of the model's image when the server scored in the 0-1000 frame."""
    size = None
    grid = args.get("image_grid_thw")
    if args.get("det_verifier_normalized") and grid:
        try:
            size = (float(grid[0][1]), float(grid[0][2]))  # (H, W)
        except (TypeError, ValueError, IndexError, KeyError):
            size = None

    def view(item: dict[str, Any]) -> list:
        coords = item["bbox_2d"]
        if size is None:
            return list(coords)
        try:
            return list(to_pixels([Box(*(float(v) for v in coords))], size)[0].xyxy)
        except (TypeError, ValueError, OverflowError):
            return list(coords)

    return {"pred_boxes": [view(p) for p in pred], "gt_boxes": [view(g) for g in gt]}


def _subscores(server: dict[str, Any]) -> dict[str, float]:
    """The server's own numbers under `vtriune/`, plus the standard keys (label-first at 0.5, pure mAP)."""
    out = {f"vtriune/{key}": float(value) for key, value in server.items() if key != "final_score"}
    standard = {
        "iou": "report_iou_50_label_match_pure",
        "precision": "report_iou_50_label_match_precision",
        "recall": "report_iou_50_label_match_recall",
        "map": "pure_map_score",
        "map50": "pure_map50_score",
        "map75": "pure_map75_score",
    }
    return out | {key: float(server[source]) for key, source in standard.items()}


def _detection(response: str, solution: Any, args: dict[str, Any], select: Any, budget_s: float | None):
    """(accuracy, format, failure, sub-scores, extras) of the released detection verifier."""
    ratios = det.sanitize_ratios(args.get("det_reward_ratio", {}))
    fmt = detection_format(response)
    normalized, grid = args.get("det_verifier_normalized", False), args.get("image_grid_thw")
    try:
        with time_budget(budget_s):
            server, pred, gt = det.verify_accuracy(response, solution, ratios, normalized, grid, select)
    except VerifierTimeout:
        return 0.0, fmt, "timeout", {}, {}
    failure = "spec" if not gt else "parse" if not pred else None
    return server["final_score"], fmt, failure, _subscores(server), _view_boxes(pred, gt, args)


def _math(response: str, solution: Any, args: dict[str, Any], budget_s: float | None):
    """(accuracy, format, failure, sub-scores, extras) of the released math verifier."""
    fmt = mth.verify_format(response)
    try:
        with time_budget(budget_s):
            acc, failure = mth.verify_accuracy(response, solution)
    except VerifierTimeout:
        return 0.0, fmt, "timeout", {}, {}
    return acc, fmt, failure, {}, {}


def score_vtriune(
    response: str,
    reward_model: dict[str, Any],
    image_size: tuple[int, int] | None,
    iou_threshold: Any,
    budget_s: float | None,
) -> dict[str, Any]:
    """The released server's result for one sample, in the public result-dict shape."""
    name = str(reward_model.get("verifier"))
    try:
        if name not in VERIFIERS:
            raise KeyError(f"released server has no verifier {name!r} (it has {', '.join(VERIFIERS)})")
        # the request model coerces both ratios before anything runs; a bad one fails the request
        acc_ratio = (
            1.0 if reward_model.get("accuracy_ratio") is None else float(reward_model["accuracy_ratio"])
        )
        fmt_ratio = 0.1 if reward_model.get("format_ratio") is None else float(reward_model["format_ratio"])
        args = _constructor_args(reward_model, image_size)
        step_ratio = float(args["step"]) / float(args["total_steps"])  # computed (and may raise) for both
        solution = reward_model.get("ground_truth")
        if name == "mathverify":
            acc, fmt, failure, scores, extras = _math(response, solution, args, budget_s)
        else:
            select = det.select_threshold(iou_threshold, step_ratio)
            acc, fmt, failure, scores, extras = _detection(response, solution, args, select, budget_s)
        acc, fmt = float(acc), float(fmt)
    except VerifierTimeout:
        return make_result(name, 0.0, 0.0, 0.0, "timeout", _DETAIL["timeout"])
    except Exception as err:  # the server answers any exception with all-zero rewards
        detail = f"released server would raise {type(err).__name__}: {err}"
        return make_result(name, 0.0, 0.0, 0.0, "crash", detail[:500])
    try:
        reward = _mix(acc, fmt, acc_ratio, fmt_ratio)
    except Exception as err:
        detail = f"final weighting raised {type(err).__name__}: {err}"
        return make_result(name, 0.0, acc, fmt, "crash", detail, scores, extras)
    return make_result(name, reward, acc, fmt, failure, _DETAIL[failure], scores, extras)


def _mix(acc: float, fmt: float, acc_ratio: float, fmt_ratio: float) -> float:
    """Accuracy and format weighted by their share of the ratio sum (ZeroDivisionError when it is 0)."""
    both = acc_ratio + fmt_ratio
    return acc * (acc_ratio / both) + fmt * (fmt_ratio / both)
