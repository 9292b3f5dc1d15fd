"""`python -m lit_triune.study reevaluate`: a run's final checkpoint scored as its stage report scores (the same
images give the final report's greedy figures), on fresh images shared by every checkpoint, written where
`compare-reproduce` reads it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from rl_fit import tiny_data, tiny_module

from lit_triune.study.__main__ import main as study
from lit_triune.study.reevaluate import final_checkpoints
from lit_triune.study.table import compare_reproduce, pooled_reproduce_reports

VAL = {"counting": 4, "grounding": 3}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """reproduce_table.sh's layout, two seeds: one 3-step fit (checkpoint every 2 steps, so the cadence alone
    would have left `last` at step 2) with a final stage report on VAL; seed 1 is a copy of seed 0's run."""
    root = tmp_path_factory.mktemp("reevaluate")
    run = root / "runs" / "seed_0" / "tiny" / "version_0"
    module = tiny_module(stage_reports=["final"], val_samples=2, warm_start_steps=1, group_size=2)
    data = tiny_data(root / "data", val_synthetic=VAL, val_batch_size=8)
    pl.seed_everything(0)
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         default_root_dir=run,
                         callbacks=[ModelCheckpoint(dirpath=run / "checkpoints", every_n_train_steps=2, save_last=True)])
    trainer.fit(module, datamodule=data)
    shutil.copytree(root / "runs" / "seed_0", root / "runs" / "seed_1")
    return root


def test_final_checkpoints_are_found_per_seed(runs: Path) -> None:
    found = final_checkpoints(runs / "runs")
    assert sorted(found) == [0, 1] and all(p.name == "last.ckpt" for p in found.values())
    assert torch.load(found[0], weights_only=False)["global_step"] == 3  # the weights the run ended with


@pytest.mark.slow  # two checkpoints scored (greedy + 2 samples on 7 images), the verifier warm-up
def test_reevaluate_scores_like_the_final_report_and_compare_reads_it(runs: Path, capsys) -> None:
    reports = json.loads((runs / "runs" / "seed_0" / "tiny" / "version_0" / "stage_reports.json").read_text())
    # the run's own validation images (data seed 0): the final report's greedy figures again
    own = runs / "own"
    assert study(["reevaluate", str(runs / "runs"), "--out", str(own), "--seeds", "0", "--data-seed", "0",
                  "--val", "counting=4", "--val", "grounding=3"]) == 0
    again = json.loads((own / "stage_reports_seed_0.json").read_text())["final"]
    assert again["step"] == 3 and again["val"] == VAL and again["val_samples"] == 2 and again["scored_at_iou"] == reports["final"]["scored_at_iou"]
    for src in ("synthetic_counting", "synthetic_grounding"):
        for metric in ("accuracy", "reward", "format", "count"):
            assert again["sources"][src][metric] == reports["final"]["sources"][src][metric], (src, metric)
        assert again["sources"][src]["sampled/count"] == 2 * again["sources"][src]["count"]

    # fresh images, the same for every checkpoint: identical checkpoints give identical figures
    fresh = runs / "fresh"
    assert study(["reevaluate", str(runs / "runs"), "--out", str(fresh), "--val", "grounding=5"]) == 0
    pooled = pooled_reproduce_reports([fresh])
    assert sorted(pooled) == [0, 1] and pooled[0] == {**pooled[1], "final": {**pooled[1]["final"],
                                                                          "checkpoint": pooled[0]["final"]["checkpoint"],
                                                                          "wall_time_s": pooled[0]["final"]["wall_time_s"]}}
    assert pooled[0]["final"]["sources"]["synthetic_grounding"]["count"] == 5
    table = compare_reproduce(pooled, pooled, ("x", "y"))
    row = next(line for line in table.splitlines() if line.startswith("| synthetic_grounding accuracy (mean of sampled)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "+0.0" and cells[5] == "—"  # no warm-start figures to compare: "—", not "no"

    # a second call keeps what is scored on the same images; other images are scored again
    capsys.readouterr()
    assert study(["reevaluate", str(runs / "runs"), "--out", str(fresh), "--val", "grounding=5", "--seeds", "1"]) == 0
    assert "already scored on these images, kept" in capsys.readouterr().out


def test_reevaluate_refuses_missing_seeds_and_bad_counts(runs: Path, capsys) -> None:
    assert study(["reevaluate", str(runs / "runs"), "--out", str(runs / "x"), "--val", "grounding=2",
                  "--seeds", "7"]) == 2
    assert "seeds [7]" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="TASK=N"):
        study(["reevaluate", str(runs / "runs"), "--out", str(runs / "x"), "--val", "grounding=0"])
