"""Two-process DDP on CPU (gloo) through the real command line: `main.py fit -c conf/tiny.yaml
--trainer.devices=2 --trainer.strategy=ddp`, a few GRPO steps after a short warm-start.

Checked on the files each rank dumps (tests/support/rl_probe.py) and on rank 0's CSV log: the ranks roll
out disjoint prompts, end with identical policy weights (gradients are averaged, not per rank), and
what is logged is the global figure — the mean over both ranks' rollouts — not rank 0's own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from rl_cli import load_checkpoint, read_metrics, run_fit, snapshot_config, step_checkpoints, tiny_args

MAX_STEPS = 5
WARM = 2


@pytest.mark.slow
@pytest.mark.ddp
def test_two_rank_ddp_grpo(tmp_path: Path, tiny_model_path: Path) -> None:
    probe = tmp_path / "probe"
    args = tiny_args(tmp_path / "run", max_steps=MAX_STEPS, warm_start_steps=WARM, ckpt_every=MAX_STEPS,
                     config=snapshot_config(tmp_path), num_workers=0,
                     # the ViT trains in the warm-start and is frozen in RL: DDP must cope with the trainable set
                     # changing between stages (find_unused_parameters); the default now keeps it frozen in both
                     extra=["--trainer.devices=2", "--trainer.strategy=ddp", "--model.reward_workers=0",
                            "--model.warm_start_freeze=none",
                            "--trainer.callbacks+=rl_probe.RankProbe", f"--trainer.callbacks.init_args.out_dir={probe}"])
    t0 = time.perf_counter()
    run_fit(args, timeout=300)
    print(f"\n2-rank DDP run, {MAX_STEPS} steps: {time.perf_counter() - t0:.1f} s")

    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["global_step"] for r in ranks] == [MAX_STEPS, MAX_STEPS]
    assert ranks[0]["pid"] != ranks[1]["pid"]
    steps0, steps1 = ranks[0]["steps"], ranks[1]["steps"]
    assert len(steps0) == len(steps1) == MAX_STEPS
    assert [s["warm_start"] for s in steps0] == [True] * WARM + [False] * (MAX_STEPS - WARM)

    # Disjoint prompts: no id on both ranks, within a step or over the run.
    ids0 = [i for s in steps0 for i in s["ids"]]
    ids1 = [i for s in steps1 for i in s["ids"]]
    assert len(set(ids0)) == len(ids0) and len(set(ids1)) == len(ids1)
    assert not set(ids0) & set(ids1)

    # Gradients averaged: both ranks took every step, and their weights are equal after training
    # on different prompts -- and differ from the initial weights.
    for a, b in zip(steps0, steps1, strict=True):
        assert a["after_step"] == b["after_step"] == a["global_step"] + 1
    w0, w1 = torch.load(probe / "rank0.pt"), torch.load(probe / "rank1.pt")
    assert w0.keys() == w1.keys()
    for name in w0:
        assert torch.equal(w0[name], w1[name]), name
    from transformers import AutoModelForImageTextToText

    init = AutoModelForImageTextToText.from_pretrained(tiny_model_path, dtype=torch.float32).state_dict()
    moved = [n for n in w0 if not torch.equal(w0[n], init[n])]
    assert any(".visual." in n for n in moved)  # the warm-start trains the ViT
    assert any("language_model" in n for n in moved)

    # Global metrics: each rank's logged value is the mean of the two ranks' own rollout figures,
    # and rank 0's CSV log holds the same numbers.
    logged_csv = read_metrics(tmp_path / "run")
    grpo = 0
    for a, b in zip(steps0, steps1, strict=True):
        if a["warm_start"]:
            continue
        grpo += 1
        step = a["global_step"]
        for key, local0 in a["local"].items():
            expected = (local0 + b["local"][key]) / 2
            assert a["logged"][key] == pytest.approx(expected, abs=1e-6), (key, step)
            assert b["logged"][key] == pytest.approx(expected, abs=1e-6), (key, step)
            assert logged_csv[key][step] == pytest.approx(expected, abs=1e-6), (key, step)
        for key in ("train/loss", "train/grad_norm", "train/advantage_abs_mean"):
            assert a["logged"][key] == pytest.approx(b["logged"][key], abs=1e-6), (key, step)
            assert logged_csv[key][step] == pytest.approx(a["logged"][key], abs=1e-6), (key, step)
    assert grpo == MAX_STEPS - WARM
    # The two ranks did see different rollouts, so "global" is not trivially rank 0's value.
    assert any(a["local"] != b["local"] for a, b in zip(steps0[WARM:], steps1[WARM:], strict=True))

    # Rank 0's checkpoint holds both ranks' data positions.
    ckpt = load_checkpoint(step_checkpoints(tmp_path / "run")[MAX_STEPS])
    per_rank = ckpt["TriuneDataModule"]["per_rank"]
    assert len(per_rank) == 2 and per_rank[0] != per_rank[1]
