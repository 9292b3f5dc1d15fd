"""Our one-image COCO mAP equals pycocotools' COCOeval (bbox, area all, maxDets 100) on random cases."""

from __future__ import annotations

import contextlib
import io
import random

import pytest

from lit_triune.rewards.coco import coco_map

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _pycoco(pred, gt):
    cats: dict[str, int] = {}
    for _, label in gt:
        cats.setdefault(label, len(cats))
    dataset = {
        "images": [{"id": 0}],
        "categories": [{"id": i, "name": name} for name, i in cats.items()],
        "annotations": [
            {"id": k + 1, "image_id": 0, "category_id": cats[lab], "iscrowd": 0,
             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])}
            for k, (b, lab) in enumerate(gt)
        ],
    }  # fmt: skip
    dets = [{"image_id": 0, "category_id": cats[lab], "score": 1.0, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
            for b, lab in pred if lab in cats]  # fmt: skip
    if not dets:
        return 0.0, 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return tuple(float(x) for x in ev.stats[:3])


def _case(rng: random.Random):
    labels = ["person", "car", "dog", "cat"][: rng.randint(1, 4)]

    def box():
        x, y = rng.uniform(0, 900), rng.uniform(0, 900)
        return [x, y, x + rng.uniform(1, 300), y + rng.uniform(1, 300)]

    gt = [(box(), rng.choice(labels)) for _ in range(rng.randint(1, 10))]
    pred = []
    for b, lab in gt:  # noisy copies of the truth, some relabelled, some missing
        if rng.random() < 0.8:
            j = [v + rng.uniform(-40, 40) for v in b]
            j = [min(j[0], j[2]), min(j[1], j[3]), max(j[0], j[2]), max(j[1], j[3])]
            pred.append((j, lab if rng.random() < 0.85 else rng.choice([*labels, "unknown"])))
    pred += [(box(), rng.choice(labels)) for _ in range(rng.randint(0, 5))]  # false alarms
    if pred and rng.random() < 0.2:
        pred.append(pred[0])  # a duplicate
    rng.shuffle(pred)
    return pred, gt


def test_map_equals_pycocotools_on_random_multiclass_cases():
    rng = random.Random(1234)
    worst, nonzero = 0.0, 0
    for _ in range(150):
        pred, gt = _case(rng)
        ours, ref = coco_map(pred, gt), _pycoco(pred, gt)
        worst = max(worst, *(abs(a - b) for a, b in zip(ours, ref, strict=True)))
        nonzero += ref[0] > 0
    assert worst <= 1e-6
    assert nonzero > 100  # the cases exercise real matching, not empty results


def test_map_hand_values():
    gt = [([0, 0, 100, 100], "dog")]
    # pycocotools' precision is tp / (tp + fp + eps), so a perfect hit is 1 - 2e-16, not 1
    assert coco_map([([0, 0, 100, 100], "dog")], gt) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    assert coco_map([([0, 0, 100, 100], "cat")], gt) == (0.0, 0.0, 0.0)  # no prediction of a gt label
    # IoU 0.81 (81x100 inside 100x100): a hit at thresholds 0.50..0.80 (7 of 10), AP 1 there
    assert coco_map([([0, 0, 81, 100], "dog")], gt) == pytest.approx((0.7, 1.0, 1.0))
