"""lit-triune-predict on a tiny shard set: a scored JSON line per sample, in the stream's order, with the scores
the reward functions give for that response, and the per-source means printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lit_triune.data.prepare import main as prepare
from lit_triune.predict import main as predict
from lit_triune.rewards import score

N = {"counting": 3, "grounding": 2}  # samples per shard set


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict_shards")
    for task, n in N.items():
        prepare(["synthetic", "--task", task, "--n", str(n), "--out", str(root / task)])
    return {task: root / task for task in N}


@pytest.mark.slow  # >= 5 s (a fit, the verifier warm-up)
def test_predict_writes_a_scored_line_per_sample(shards, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    predict(["tiny", "--shards", f"mine_counting={shards['counting']}", "--shards", f"mine_boxes={shards['grounding']}",
             "--out", str(out), "--batch-size", "2", "--max-new-tokens", "16", "--reward-workers", "0"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == sum(N.values())
    assert [r["index"] for r in lines] == list(range(len(lines)))
    assert len({(r["data_source"], r["id"]) for r in lines}) == len(lines)  # each sample once
    by_source = {s: [r for r in lines if r["data_source"] == s] for s in {r["data_source"] for r in lines}}
    assert sorted(len(v) for v in by_source.values()) == sorted(N.values())
    for row in lines:
        assert row["prompt"] and isinstance(row["response"], str) and row["reward_model"]["ground_truth"]
        assert 0.0 <= row["reward"] and 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["format"] <= 1.0
        assert 1 <= row["response_length"] <= 16 and isinstance(row["truncated"], bool)
        # the score is the reward functions' on this very response (the verifier pool ran the same code)
        expected = score(row["response"], row["reward_model"], image_size=tuple(row["image_size"]), iou_threshold=0.85)
        assert (row["reward"], row["accuracy"]) == pytest.approx((expected["reward"], expected["accuracy"]))
    boxes = [r for r in lines if "gt_boxes" in r]
    assert len(boxes) == N["grounding"] and all(r["gt_boxes"] for r in boxes)  # only box rows carry boxes
    printed = capsys.readouterr().out
    for source, rows in by_source.items():
        assert f"n={len(rows)}" in printed and source in printed


def test_predict_refuses_no_data_and_bad_pairs(tmp_path):
    with pytest.raises(SystemExit):
        predict(["tiny", "--out", str(tmp_path / "p.jsonl")])
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        predict(["tiny", "--shards", "nopath", "--out", str(tmp_path / "p.jsonl")])


@pytest.mark.slow  # >= 5 s (a fit, the verifier warm-up)
def test_predict_from_a_checkpoint_answers_as_its_export_does(shards, tmp_path):
    """A training checkpoint is rebuilt as lit-triune-export rebuilds it (its hyper-parameters, its weights), so
    its greedy answers are those of its HF export."""
    from rl_fit import fit, tiny_data, tiny_module

    from lit_triune.export import export

    module = tiny_module(warm_start_steps=1, group_size=2)
    trainer = fit(module, tiny_data(tmp_path / "data"), tmp_path, max_steps=1)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    export(tmp_path / "last.ckpt", tmp_path / "hf")
    answers = {}
    for name, model in (("ckpt", tmp_path / "last.ckpt"), ("hf", tmp_path / "hf")):
        out = tmp_path / f"{name}.jsonl"
        predict([str(model), "--shards", f"counting={shards['counting']}", "--out", str(out), "--max-new-tokens", "16",
                 "--reward-workers", "0"])
        answers[name] = [json.loads(line)["response"] for line in out.read_text().splitlines()]
    assert len(answers["ckpt"]) == N["counting"] and answers["ckpt"] == answers["hf"]
