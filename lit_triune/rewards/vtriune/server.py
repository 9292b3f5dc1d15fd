"""`compat="vtriune"`: score a sample the way the released reward pipeline does, end to end.

Replays what verl's `RemoteRewardManager` sends and what `reward_serving_fastapi.judge_reward`
does with it: verifier lookup (only `mathverify` and `detection` exist there), verifier construction
from `verifier_parm` (unknown keys raise -> all zeros), format score, accuracy score, then
`acc * a/(a+f) + fmt * f/(a+f)` with a = accuracy_ratio (default 1.0) and f = format_ratio
(default 0.1). Anything that raises before the scores are stored scores 0 everywhere; a failure in
the final weighting keeps accuracy and format and zeroes only the reward, as the server does.
"""

from __future__ import annotations

import json
from typing import Any

from lit_triune.rewards.budget import VerifierTimeout, time_budget
from lit_triune.rewards.result import make_result
from lit_triune.rewards.vtriune import detection as det
from lit_triune.rewards.vtriune import math as mth
from lit_triune.rewards.vtriune.boxes import detection_format

VERIFIERS = ("mathverify", "detection")
_PARM_KEYS = {
    "is_training",
    "step",
    "total_steps",
    "image_path",
    "image_grid_thw",
    "verifier_style",
    "det_verifier_normalized",
    "det_reward_ratio",
}  # fmt: skip  (the released constructor's parameters)


def _parm(reward_model: dict[str, Any], image_size: tuple[int, int] | None) -> dict[str, Any]:
    raw = reward_model.get("verifier_parm")
    parm = dict(json.loads(raw) if isinstance(raw, str) else (raw or {}))
    parm.setdefault("step", 0)  # the trainer injects these; step/total_steps only matter for 'dynamic'
    parm.setdefault("total_steps", 1)
    parm["is_training"] = True
    if image_size is not None:
        parm["image_grid_thw"] = [(1, int(image_size[0]), int(image_size[1]))]
    unknown = set(parm) - _PARM_KEYS
    if unknown:
        raise TypeError(f"released verifier got unexpected verifier_parm keys {sorted(unknown)}")
    return parm


def _pixel_boxes(pred: list, gt: list, parm: dict[str, Any]) -> dict[str, list]:
    """Boxes for image views, in pixels of the model's image when the server worked in the 0-1000 frame."""
    grid = parm.get("image_grid_thw")
    scale = None
    if parm.get("det_verifier_normalized") and grid:
        try:
            scale = (float(grid[0][2]) / 1000.0, float(grid[0][1]) / 1000.0)  # (W, H) / 1000
        except (TypeError, ValueError, IndexError, KeyError):
            scale = None

    def conv(box: list) -> list:
        try:
            return [float(v) * scale[i % 2] for i, v in enumerate(box)] if scale else list(box)
        except (TypeError, ValueError, OverflowError):
            return list(box)

    return {"pred_boxes": [conv(p["bbox_2d"]) for p in pred], "gt_boxes": [conv(g["bbox_2d"]) for g in gt]}


def _flatten(scores: dict[str, Any]) -> dict[str, float]:
    out = {f"vtriune/{k}": float(v) for k, v in scores.items() if k != "final_score"}
    out.update(
        iou=float(scores["report_iou_50_label_match_pure"]),
        precision=float(scores["report_iou_50_label_match_precision"]),
        recall=float(scores["report_iou_50_label_match_recall"]),
        map=float(scores["pure_map_score"]),
        map50=float(scores["pure_map50_score"]),
        map75=float(scores["pure_map75_score"]),
    )
    return out


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
        # the payload model coerces the ratios first; a bad one fails the whole request
        a = 1.0 if reward_model.get("accuracy_ratio") is None else float(reward_model["accuracy_ratio"])
        f = 0.1 if reward_model.get("format_ratio") is None else float(reward_model["format_ratio"])
        parm = _parm(reward_model, image_size)
        step_ratio = float(parm["step"]) / float(parm["total_steps"])
        solution = reward_model.get("ground_truth")
        scores: dict[str, float] = {}
        extras: dict[str, Any] = {}
        failure = None
        if name == "mathverify":
            fmt = mth.verify_format(response)
            try:
                with time_budget(budget_s):
                    acc, failure = mth.verify_accuracy(response, solution)
            except VerifierTimeout:
                acc, failure = 0.0, "timeout"
        else:
            ratios = det.sanitize_ratios(parm.get("det_reward_ratio", {}))
            select = det.select_threshold(iou_threshold, step_ratio)
            fmt = detection_format(response)
            try:
                with time_budget(budget_s):
                    res, pred, gt = det.verify_accuracy(
                        response,
                        solution,
                        ratios,
                        parm.get("det_verifier_normalized", False),
                        parm.get("image_grid_thw"),
                        select,
                    )
                acc = res["final_score"]
                failure = "spec" if not gt else "parse" if not pred else None
                scores = _flatten(res)
                extras = _pixel_boxes(pred, gt, parm)
            except VerifierTimeout:
                acc, failure = 0.0, "timeout"
        acc, fmt = float(acc), float(fmt)
    except VerifierTimeout:
        return make_result(name, 0.0, 0.0, 0.0, "timeout", "released verifier exceeded the time budget")
    except Exception as err:  # the released server returns all-zero rewards on any exception
        return make_result(
            name, 0.0, 0.0, 0.0, "crash", f"released server would raise {type(err).__name__}: {err}"[:500]
        )
    detail = {
        None: None,
        "timeout": "released verifier exceeded the time budget",
        "parse": "the released parser read no answer from the response (scored as the server does)",
        "spec": "the released parser read no ground truth (scored as the server does)",
    }[failure]
    try:
        total = a + f
        reward = acc * (a / total) + fmt * (f / total)
    except Exception as err:
        return make_result(
            name,
            0.0,
            acc,
            fmt,
            "crash",
            f"final weighting raised {type(err).__name__}: {err}",
            scores,
            extras,
        )
    return make_result(name, reward, acc, fmt, failure, detail, scores, extras)
