"""`lit-triune-prepare check` (and `filter`) read every shard to the end and list every bad sample, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shard_builders import build_corrupt_set

from lit_triune.data.prepare import main
from lit_triune.data.shards import ShardError, iter_shard, resolve_shards


@pytest.fixture
def corrupt_set(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    return build_corrupt_set(tmp_path)


def test_check_lists_every_bad_sample_and_exits_2(corrupt_set, capsys, tmp_path):
    good, expect = corrupt_set
    report = tmp_path / "problems.json"
    assert main(["check", "--input", str(good), "--report", str(report)]) == 2
    err = capsys.readouterr().err
    for what, text in expect.items():
        assert text in err, f"{what}: {text!r} not reported:\n{err}"
    problems = json.loads(report.read_text())["problems"]
    keys = {p["key"] for p in problems if p["key"]}
    assert {"bad_json", "no_json", "no_image", "bad_image", "unknown_verifier", "no_reward_model", "inverted_box",
            "image_count"} <= keys
    assert all(p["shard"] for p in problems)  # every problem names its file


def test_filter_reports_them_all_writes_nothing_and_exits_2(corrupt_set, capsys, tmp_path):
    good, expect = corrupt_set
    out = tmp_path / "filtered"
    assert main(["filter", "--input", str(good), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert all(text in err for text in expect.values()), err
    assert not out.exists()


def test_check_passes_a_clean_set(tmp_path, capsys):
    assert main(["synthetic", "--task", "counting", "--n", "5", "--out", str(tmp_path / "a")]) == 0
    assert main(["check", "--input", str(tmp_path / "a")]) == 0
    assert "0 bad samples" in capsys.readouterr().out


def test_unreadable_shard_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.tar"
    bad.write_bytes(b"not a tar" * 100)
    with pytest.raises(ShardError, match="x.tar"):
        list(iter_shard(bad))
    with pytest.raises(ShardError, match="x.tar"):
        resolve_shards(str(bad))  # no manifest: counted at set-up
