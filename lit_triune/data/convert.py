"""Converters from the formats users bring into Orsta-format samples: Orsta parquet, COCO, JSONL.

Each yields sample dicts; `ShardWriter` validates them, so a bad row fails at prepare time with
the shard and key named.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lit_triune.boxes import Box, format_boxes
from lit_triune.data.synthetic.common import FORMAT_INSTRUCTION


def convert_orsta_parquet(path: str | Path, batch_rows: int = 256) -> Iterator[dict[str, Any]]:
    """Orsta-Data-47k parquet rows as they are: the field names already match the schema.

    A row without `extra_info.id` (some released files leave it null) gets `<file stem>-<row index>`,
    so ids stay unique and stable across runs."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    stem, index = Path(path).stem, 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            extra = row.get("extra_info")
            if isinstance(extra, dict) and extra.get("id") in (None, ""):
                row["extra_info"] = {**extra, "id": f"{stem}-{index}"}
            elif extra is None:
                row["extra_info"] = {"id": f"{stem}-{index}"}
            index += 1
            yield row


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"image {str(path)!r} does not exist")
    return path.read_bytes()


def _format_instruction(question: str) -> str:
    """The <think>/<answer> instruction, unless the question already asks for an <answer> block (a user's
    own prompt with its own format line gets no second one)."""
    return "" if "<answer>" in question else FORMAT_INSTRUCTION


def _sample(source: str, sid: str, data: bytes, image_path: str, question: str, gt: str, verifier: str,
            ability: str, parm: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"data_source": source, "images": [{"bytes": data, "path": image_path}],
            "prompt": [{"role": "user", "content": "<image>" + question + _format_instruction(question)}],
            "ability": ability,
            "reward_model": {"answer": gt, "ground_truth": gt, "accuracy_ratio": 1.0, "format_ratio": 0.1,
                             "verifier": verifier, "verifier_parm": dict(parm or {})},
            "extra_info": {"id": sid, "image_path": image_path, "question": question}}


def convert_coco(annotations: str | Path, image_dir: str | Path, *, task: str = "detection",
                 source: str = "coco") -> Iterator[dict[str, Any]]:
    """COCO JSON + image folder -> detection samples (one per image) or grounding samples (one per
    annotation carrying a `caption`/`sentence` referring expression). Boxes stay in absolute pixels
    of the original image (`normalized: false`); the DataModule rescales them with the image.
    """
    if task not in ("detection", "grounding"):
        raise ValueError(f"COCO task must be 'detection' or 'grounding', got {task!r}")
    coco = json.loads(Path(annotations).read_text())
    for k in ("images", "annotations", "categories"):
        if k not in coco:
            raise ValueError(f"{annotations}: COCO JSON lacks {k!r} (has {sorted(coco)})")
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    by_image: dict[Any, list[dict]] = defaultdict(list)
    for ann in coco["annotations"]:
        by_image[ann["image_id"]].append(ann)

    def box(ann: dict) -> Box:
        x, y, w, h = (float(v) for v in ann["bbox"])
        return Box(x, y, x + w, y + h, label=cats.get(ann["category_id"], str(ann["category_id"])))

    for img in coco["images"]:
        anns = [a for a in by_image.get(img["id"], []) if not a.get("iscrowd", 0)]
        if not anns:
            continue
        path = Path(image_dir) / img["file_name"]
        data = _read(path)
        if task == "detection":
            boxes = [box(a) for a in anns]
            names = ", ".join(sorted({b.label or "" for b in boxes}))
            yield _sample(source, f"{source}-{img['id']}", data, img["file_name"],
                          f"Detect all objects of these categories: {names}. Give each box as bbox_2d with its label.",
                          format_boxes(boxes, tagged=True), "detection", "detection", {"normalized": False})
            continue
        for a in anns:
            phrase = a.get("caption") or a.get("sentence")
            if not phrase:
                continue
            yield _sample(source, f"{source}-{img['id']}-{a['id']}", data, img["file_name"],
                          f"Locate {phrase} and give its bounding box.",
                          format_boxes([box(a)], bare=True), "grounding", "grounding", {"normalized": False})


def convert_jsonl(path: str | Path, image_dir: str | Path, *, source: str = "jsonl",
                  verifier: str = "mathverify", ability: str = "math") -> Iterator[dict[str, Any]]:
    """JSONL reasoning sets: one object per line with `image`, `question`, `answer`, optional
    `id`, `verifier`, `verifier_parm`, `ability`."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON: {err}") from err
            missing = [k for k in ("image", "question", "answer") if k not in row]
            if missing:
                raise ValueError(f"{path}:{lineno}: missing {missing}; each line needs image, question, answer")
            yield _sample(row.get("source", source), str(row.get("id", f"{source}-{lineno}")),
                          _read(Path(image_dir) / row["image"]), row["image"], row["question"], str(row["answer"]),
                          row.get("verifier", verifier), row.get("ability", ability), row.get("verifier_parm"))
