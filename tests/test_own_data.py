"""The README's "Train on your own data" section, followed as a new user would: ten images and a JSONL file,
`lit-triune-prepare jsonl ... --val-fraction`, then `main.py fit -c conf/tiny.yaml -c conf/examples/own_data.yaml
--model.model_path=<Hub id>` with the model in a local cache laid out as the Hub lays it out
(`models--someorg--tiny-vl/snapshots/<sha>/`, `refs/main`) and HF_HUB_OFFLINE=1. Only the run length is
shortened (2 RL steps, 8 new tokens, 2 prompts a step). Checks that it trains and that metrics are logged
under the user's source name, not `other`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lit_triune.models.tiny import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"
SHORT = ["--trainer.max_steps=2", "--trainer.log_every_n_steps=1", "--model.max_new_tokens=8",
         "--model.reward_workers=0", "--data.batch_size=2", "--data.num_workers=0"]  # fmt: skip


def _hub_cache(root: Path, repo_id: str) -> Path:
    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(build_tiny_model("tiny"), repo / "snapshots" / SHA)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)
    return root


def _user_data(folder: Path) -> Path:
    """10 PNGs with 1-3 squares each, and the JSONL the README documents (image paths relative to it)."""
    (folder / "images").mkdir(parents=True)
    with open(folder / "data.jsonl", "w") as f:
        for i in range(10):
            n = i % 3 + 1
            image = Image.new("RGB", (112, 112), "white")
            draw = ImageDraw.Draw(image)
            for k in range(n):
                draw.rectangle([8 + 34 * k, 40, 36 + 34 * k, 68], fill="blue")
            image.save(folder / "images" / f"img-{i}.png")
            f.write(json.dumps({"id": f"img-{i}", "image": f"images/img-{i}.png",
                                "question": "How many squares are there?", "answer": str(n)}) + "\n")
    return folder / "data.jsonl"


def _scalars(log_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two subprocesses; minutes on a loaded 2-core machine
def test_readme_recipe_trains_on_ten_images_with_a_hub_id(tmp_path: Path) -> None:
    cwd = tmp_path / "user"
    jsonl = _user_data(cwd / "my_data")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(_hub_cache(tmp_path / "hub", "someorg/tiny-vl")),
               OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", VLLM_ENABLE_V1_MULTIPROCESSING="0",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "callbacks")]))

    # step 2: shards with a validation split (the console script's entry point)
    prep = subprocess.run([sys.executable, "-m", "lit_triune.data.prepare", "jsonl", "--input",
                           str(jsonl.relative_to(cwd)), "--source", "my_data", "--val-fraction", "0.1", "--seed", "0",
                           "--out", "data/my_data"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert prep.returncode == 0, prep.stderr
    assert "train: wrote 9 samples" in prep.stdout and "val: wrote 1 samples" in prep.stdout, prep.stdout

    # step 3: the README's fit command, shortened
    args = [sys.executable, str(ROOT / "lit_triune" / "main.py"), "fit", "-c", str(ROOT / "conf" / "tiny.yaml"),
            "-c", str(ROOT / "conf" / "examples" / "own_data.yaml"), "--model.model_path=someorg/tiny-vl", *SHORT]
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "replaces the list" not in proc.stderr  # the template keeps the base's callbacks

    (log_dir,) = [p for p in (cwd / "runs").rglob("version_*") if p.is_dir()]
    scalars = _scalars(log_dir)
    assert scalars["train/reward/my_data"] and scalars["train/samples/my_data"]
    assert not [t for t in scalars if t.endswith("/other") or "synthetic_" in t], sorted(scalars)
    assert scalars["train/iou_threshold"]  # the base's callbacks are still there
    reports = json.loads((log_dir / "stage_reports.json").read_text())
    assert set(reports) == {"init", "final"} and set(reports["final"]["sources"]) == {"my_data"}
    saved = (log_dir / "config.yaml").read_text()
    assert "warm_start_steps: 0" in saved and "someorg/tiny-vl" in saved
