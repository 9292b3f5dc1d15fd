"""Converters on small files the tests make: Orsta parquet (embedded bytes), COCO, JSONL."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lit_triune.data import ShardWriter, TriuneDataModule, sft_target
from lit_triune.data.prepare import main, read_shards
from lit_triune.data.synthetic.common import FORMAT_INSTRUCTION


def _png(w=200, h=100, colour=(255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


def _orsta_rows():
    det_gt = "<answer>\n[{'bbox_2d': [100, 200, 500, 600], 'label': 'dog'}]\n</answer>"
    rows = []
    for i, (verifier, gt, parm) in enumerate([
        ("detection", det_gt, '{"det_verifier_normalized": true}'),
        ("mathverify", "\\frac{1}{2}", None),
    ]):
        rows.append({
            "data_source": f"orsta_{verifier}",
            "images": [{"bytes": _png(), "path": f"img{i}.png"}],
            "prompt": [{"role": "user", "content": "<image>Question? Think in <think></think>."}],
            "ability": verifier,
            "reward_model": {"answer": gt, "ground_truth": gt, "accuracy_ratio": 1.0, "format_ratio": 0.5,
                             "verifier": verifier, "verifier_parm": parm},
            "extra_info": {"id": f"row-{i}", "image_path": f"img{i}.png"},
        })
    return rows


def test_orsta_parquet_converts_and_loads_intact(tmp_path):
    rows = _orsta_rows()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "orsta.parquet")
    assert main(["orsta", "--parquet", str(tmp_path / "orsta.parquet"), "--out", str(tmp_path / "shards")]) == 0
    back = sorted(read_shards(str(tmp_path / "shards")), key=lambda s: s["extra_info"]["id"])
    for orig, got in zip(rows, back, strict=True):
        assert got == orig  # every field, image bytes and paths included
    dm = TriuneDataModule(train={"orsta": str(tmp_path / "shards")}, batch_size=2, cache_dir=str(tmp_path),
                          min_pixels=56 * 56, max_pixels=112 * 112)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    det = batch.reward_models[batch.data_sources.index("orsta_detection")]
    size = batch.image_sizes[batch.data_sources.index("orsta_detection")]
    assert size == (56, 140)  # Qwen's rule: 100x200 scaled under max_pixels, floored to multiples of 28
    assert det["ground_truth"] == rows[0]["reward_model"]["ground_truth"]  # normalised: frame-free, unchanged
    # the SFT target is in pixels of the resized image: 0-1000 -> x * 140 / 1000, y * 56 / 1000
    assert sft_target(det, size).endswith("<answer>[{'bbox_2d': [14, 11, 70, 34], 'label': 'dog'}]</answer>")


def test_orsta_rows_without_ids_get_stable_unique_ones(tmp_path):
    rows = _orsta_rows()
    for row in rows:
        row["extra_info"]["id"] = None  # as in some released files
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "part-0.parquet")
    assert main(["orsta", "--parquet", str(tmp_path / "part-0.parquet"), "--out", str(tmp_path / "shards")]) == 0
    ids = sorted(s["extra_info"]["id"] for s in read_shards(str(tmp_path / "shards")))
    assert ids == ["part-0-0", "part-0-1"]


def test_coco_detection_and_grounding(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(_png(280, 140))
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 280, "height": 140}],
            "categories": [{"id": 3, "name": "cat"}],
            "annotations": [{"id": 9, "image_id": 1, "category_id": 3, "bbox": [28, 14, 56, 28],
                             "caption": "the small cat"}]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    for task in ("detection", "grounding"):
        out = tmp_path / task
        assert main(["coco", "--annotations", str(tmp_path / "ann.json"), "--images", str(tmp_path / "imgs"),
                     "--task", task, "--out", str(out)]) == 0
        (sample,) = read_shards(str(out))
        assert sample["reward_model"]["verifier"] == task
        dm = TriuneDataModule(train={"c": str(out)}, batch_size=1, cache_dir=str(tmp_path),
                              min_pixels=56 * 56, max_pixels=140 * 70)
        dm.setup("fit")
        b = next(iter(dm.train_dataloader()))
        assert b.image_sizes == [(56, 140)]  # 140x280 halved (to 70x140), floored to multiples of 28
        # absolute boxes follow the resize: [28, 14, 84, 42] * (140/280, 56/140) = [14, 5.6, 42, 16.8]
        assert "[14, 5.6, 42, 16.8]" in b.reward_models[0]["ground_truth"]


def test_jsonl_converter_and_errors(tmp_path):
    (tmp_path / "q.png").write_bytes(_png())
    (tmp_path / "qa.jsonl").write_text(json.dumps({"image": "q.png", "question": "2+2?", "answer": "4"}) + "\n")
    assert main(["jsonl", "--input", str(tmp_path / "qa.jsonl"), "--images", str(tmp_path),
                 "--source", "geo", "--out", str(tmp_path / "s")]) == 0
    (sample,) = read_shards(str(tmp_path / "s"))
    assert sample["data_source"] == "geo" and sample["reward_model"]["ground_truth"] == "4"
    assert sample["prompt"][0]["content"] == "<image>2+2?" + FORMAT_INSTRUCTION  # the format line is added
    own = "2+2? Reply as <answer>N</answer>."  # a question with its own format line gets no second one
    (tmp_path / "own.jsonl").write_text(json.dumps({"image": "q.png", "question": own, "answer": "4"}) + "\n")
    assert main(["jsonl", "--input", str(tmp_path / "own.jsonl"), "--out", str(tmp_path / "own")]) == 0  # images: its folder
    (sample,) = read_shards(str(tmp_path / "own"))
    assert sample["prompt"][0]["content"] == "<image>" + own
    (tmp_path / "bad.jsonl").write_text(json.dumps({"image": "q.png", "question": "x"}) + "\n")
    assert main(["jsonl", "--input", str(tmp_path / "bad.jsonl"), "--images", str(tmp_path),
                 "--out", str(tmp_path / "s2")]) == 2


@pytest.mark.parametrize("mutate, field, reason", [
    (lambda r: r["images"].__setitem__(0, {"bytes": b"\xff\xd8\xffjunk", "path": None}), "images[0]", "cannot decode"),
    (lambda r: r.pop("ability"), "ability", "missing"),
    (lambda r: r["reward_model"].__setitem__("verifier", "astrology"), "reward_model.verifier", "unknown verifier"),
    (lambda r: r["reward_model"].__setitem__("ground_truth", "[{'bbox_2d': [1, 2, nan, 4], 'label': 'x'}]"),
     "reward_model.ground_truth", "non-finite"),
    (lambda r: r["reward_model"].__setitem__("ground_truth", "[{'bbox_2d': [9, 9, 1, 1], 'label': 'x'}]"),
     "reward_model.ground_truth", "inverted"),
])
def test_prepare_time_errors_name_shard_key_field(tmp_path, mutate, field, reason):
    row = _orsta_rows()[0]
    mutate(row)
    with ShardWriter(tmp_path) as w, pytest.raises(ValueError, match=reason) as err:
        w.write(row)
    assert err.value.field == field and err.value.key == "row-0" and err.value.shard == "shard-000000.tar"
    assert "shard 'shard-000000.tar' key 'row-0'" in str(err.value)
