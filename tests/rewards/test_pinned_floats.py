"""Compat-mode detection scores and one-image mAP pinned to the last bit.

The expected values (data/pinned_floats.json) were produced by the implementation these modules had
before they were rewritten in our own structure (commit f853424), which in turn was checked against
the released reward server and pycocotools. Any change in operation order that moves a float shows
here. Regenerate only for an intended change of behaviour: `python tests/rewards/test_pinned_floats.py`.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from lit_triune.rewards import score
from lit_triune.rewards.coco import coco_map

PINNED = Path(__file__).parent / "data" / "pinned_floats.json"
LABELS = ["dog", "Dog", "cat", "CAT", "person"]


def _coord(rng: random.Random) -> str:
    if rng.random() < 0.04:
        return rng.choice(["1e400", "12345678901234567890123", "true", "null", "1e20"])
    return (
        str(rng.randint(0, 1000))
        if rng.random() < 0.5
        else repr(round(rng.uniform(0, 1000), rng.choice([0, 2, 9])))
    )


def _detection_case(rng: random.Random) -> tuple[str, dict, tuple[int, int] | None, object]:
    size = rng.choice([None, (1000, 1000), (200, 400), (420, 616), (28, 56)])
    sx, sy = (size[1] / 1000, size[0] / 1000) if size else (1.0, 1.0)
    gt, pred = [], []
    for _ in range(rng.randint(1, 5)):
        x1, y1 = rng.randint(0, 800), rng.randint(0, 800)
        box = [x1, y1, x1 + rng.randint(1, 200), y1 + rng.randint(1, 200)]
        gt.append(f"{{'bbox_2d': {box}, 'label': '{rng.choice(LABELS)}'}}")
        if rng.random() < 0.8:  # a noisy copy in the model's pixel frame
            coords = [repr(round(v * (sx, sy)[i % 2] + rng.uniform(-6, 6), 3)) for i, v in enumerate(box)]
            pred.append(f"{{'bbox_2d': [{', '.join(coords)}], 'label': '{rng.choice(LABELS)}'}}")
    for _ in range(rng.randint(0, 3)):  # false alarms, some malformed or inverted
        coords = [_coord(rng) for _ in range(4)]
        pred.append(f"{{'bbox_2d': [{', '.join(coords)}], 'label': '{rng.choice(LABELS)}'}}")
    if pred and rng.random() < 0.2:
        pred.append(pred[0])
    body = "[" + ", ".join(pred) + "]"
    if rng.random() < 0.1:
        body = body[: rng.randint(1, len(body))]
    response = (
        f"<think>\nx\n</think>\n<answer>\n{body}\n</answer>"
        if rng.random() < 0.8
        else f"<answer>{body}</answer>"
    )
    keys = ["iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75"]
    ratios = {k: rng.choice([0.0, 1.0, 0.3, rng.random(), 2.0]) for k in keys if rng.random() < 0.6}
    parm = {"det_verifier_normalized": rng.random() < 0.7, "det_reward_ratio": ratios}
    if rng.random() < 0.3:
        parm.update(step=rng.randint(0, 100), total_steps=100)
    rm = {"verifier": "detection", "ground_truth": "<answer>\n[" + ", ".join(gt) + "]\n</answer>", "verifier_parm": parm,
          "accuracy_ratio": rng.choice([1.0, 2]), "format_ratio": rng.choice([0.1, 1])}  # fmt: skip
    threshold = rng.choice([None, "dynamic", 0.5, 0.75, 0.99, 0.3])
    return response, rm, size, threshold


def _map_case(rng: random.Random) -> tuple[list, list]:
    def box() -> list:
        x, y = rng.uniform(-5, 900), rng.uniform(-5, 900)
        w, h = rng.choice([rng.uniform(0, 200), 0.0, 2e5]), rng.uniform(0, 200)
        return [int(x), int(y), int(x + w), int(y + h)] if rng.random() < 0.3 else [x, y, x + w, y + h]

    gt = [(box(), rng.choice("abc")) for _ in range(rng.randint(1, 8))]
    pred = [(b if rng.random() < 0.5 else box(), lab) for b, lab in gt if rng.random() < 0.8]
    pred += [(box(), rng.choice("abc")) for _ in range(rng.randint(0, 4))]
    rng.shuffle(pred)
    return pred, gt


def _observed(n_detection: int = 300, n_map: int = 300) -> dict[str, list]:
    rng = random.Random(20250530)
    detection = []
    for _ in range(n_detection):
        response, rm, size, threshold = _detection_case(rng)
        out = score(response, rm, image_size=size, iou_threshold=threshold, compat="vtriune")
        floats = ";".join(f"{k}={v!r}" for k, v in sorted(out.items()) if isinstance(v, float))
        detection.append(
            [
                out["failure"],
                repr(out["reward"]),
                repr(out["accuracy"]),
                hashlib.sha256(floats.encode()).hexdigest()[:16],
            ]
        )  # the digest covers every float of the result (the server's sub-scores, boxes aside)
    maps = [[repr(v) for v in coco_map(*_map_case(rng))] for _ in range(n_map)]
    return {"detection": detection, "map": maps}


def test_compat_detection_and_map_floats_are_pinned():
    expected, observed = json.loads(PINNED.read_text()), _observed()
    for kind in ("detection", "map"):
        bad = [i for i, (e, o) in enumerate(zip(expected[kind], observed[kind], strict=True)) if e != o]
        assert not bad, (
            f"{kind}: {len(bad)} cases moved, first #{bad[0]}: {expected[kind][bad[0]]} -> {observed[kind][bad[0]]}"
        )
    assert sum(float(d[2]) > 0 for d in observed["detection"]) > 50  # real matching, not zeros


if __name__ == "__main__":
    PINNED.parent.mkdir(exist_ok=True)
    observed = _observed()
    lines = [
        f'"{kind}": [\n' + ",\n".join(json.dumps(row) for row in observed[kind]) + "\n]" for kind in observed
    ]
    PINNED.write_text("{\n" + ",\n".join(lines) + "\n}\n")
