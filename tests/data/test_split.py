"""`lit-triune-prepare ... --val-fraction`: a deterministic train / val split by sample id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lit_triune.data.prepare import main
from lit_triune.data.shards import find_shards
from lit_triune.data.split import validation_ids


def test_validation_ids_depend_on_ids_seed_and_fraction_only() -> None:
    ids = [f"s{i}" for i in range(100)]
    val = validation_ids(ids, 0.1, seed=0)
    assert len(val) == 10 and val == validation_ids(list(reversed(ids)), 0.1, seed=0)
    assert val != validation_ids(ids, 0.1, seed=1)
    assert validation_ids(ids[:3], 0.01) and len(validation_ids(ids[:2], 0.9)) == 1  # never none, never all
    assert validation_ids(ids, 0.0) == set()
    with pytest.raises(ValueError, match="val-fraction"):
        validation_ids(ids, 1.0)


def _jsonl(folder: Path, n: int) -> Path:
    (folder / "imgs").mkdir(parents=True)
    lines = []
    for i in range(n):
        Image.new("RGB", (28, 28), (i * 20 % 255, 0, 0)).save(folder / "imgs" / f"{i}.png")
        lines.append(json.dumps({"id": f"q{i}", "image": f"imgs/{i}.png", "question": "1+1?", "answer": "2"}))
    (folder / "qa.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "qa.jsonl"



def test_prepare_jsonl_split_writes_train_and_val(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jsonl = _jsonl(tmp_path / "in", 10)  # images relative to the JSONL file's folder: no --images needed
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main(["jsonl", "--input", str(jsonl), "--source", "geo", "--val-fraction", "0.2", "--seed", "0",
                     "--out", str(out)]) == 0
        counts = {part: json.loads((out / part / "manifest.json").read_text())["total"] for part in ("train", "val")}
        assert counts == {"train": 8, "val": 2}
        outs.append([(out / part / name).read_bytes() for part in ("train", "val")
                     for name in sorted(p.name for p in (out / part).glob("*.tar"))])
    assert outs[0] == outs[1]  # deterministic, byte for byte
    assert "train: wrote 8 samples" in capsys.readouterr().out
    assert find_shards(str(tmp_path / "a" / "val"))[0]
