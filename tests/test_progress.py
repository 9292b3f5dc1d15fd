"""The main job's progress and closing summary, as a user piping its output to a file sees them.

Runs `lit_triune/main.py fit -c conf/tiny.yaml` (6 steps: 3 warm-start + 3 RL, tiny overrides) in a
subprocess whose stdout is a pipe, from its own working directory, then checks the metrics lines, the
summary's table and paths, and that its commands name things that exist (the export one is run).
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lit_triune.progress import MetricsLines, RunSummary, StepProgressBar, progress_callbacks

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LINE = re.compile(r"^step +(\d+)/6 \(\d+%\) \| (warm-start|RL) \| (.*) \| ([\d.]+) s/step \| elapsed [\d:]+ \| ETA [\d:]+$")


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("user")
    args = [sys.executable, str(ROOT / "lit_triune" / "main.py"), "fit", "-c", str(ROOT / "conf" / "tiny.yaml"),
            "--trainer.max_steps=6", "--model.warm_start_steps=3", "--trainer.log_every_n_steps=2",
            "--model.max_new_tokens=8", "--model.reward_workers=0", "--data.batch_size=2",
            "--data.val_synthetic={counting: 4, chart: 4}", "--data.num_workers=0",
            "--trainer.default_root_dir=runs/tiny", "--trainer.logger.init_args.save_dir=runs"]  # fmt: skip
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)  # stdout: a pipe
    assert proc.returncode == 0, proc.stderr[-4000:]
    return cwd, proc.stdout


@pytest.mark.slow
def test_metrics_lines_when_output_is_a_pipe(piped_run: tuple[Path, str]) -> None:
    _, out = piped_run
    assert "\r" not in out and "v_num" not in out and "Epoch 0/-2" not in out  # no bar written to a pipe
    assert "training 6 steps (warm-start 3, RL 3) from step 0; a line every 2 steps; logs in runs/tiny/version_0" in out
    lines = {int(m[1]): m for m in map(LINE.match, out.splitlines()) if m}
    assert sorted(lines) == [2, 4, 6], out
    assert lines[2][2] == "warm-start" and re.fullmatch(r"loss -?[\d.]+", lines[2][3])
    assert lines[6][2] == "RL" and re.fullmatch(r"reward [\d.]+ \| accuracy [\d.]+ \| loss -?[\d.]+", lines[6][3])


@pytest.mark.slow
def test_closing_summary_names_what_exists(piped_run: tuple[Path, str], tmp_path: Path) -> None:
    cwd, out = piped_run
    summary = out[out.index("== run summary =="):].splitlines()
    fields = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in summary if re.match(r"^[A-Za-z ]+: ", ln)}

    # the final per-source table: one column per stage report, one row per validation source
    head = next(i for i, ln in enumerate(summary) if ln.startswith("source "))
    # conf/tiny.yaml reports after the warm-start and at the end (no random-init report)
    assert re.fullmatch(r"source +after_warm_start \(step 3\) +final \(step 6\)", summary[head])
    # each cell: greedy / mean of sampled (conf/tiny.yaml sets val_samples)
    rows = {ln.split()[0]: ln.split()[1:] for ln in summary[head + 1: head + 3]}
    assert set(rows) == {"synthetic_chart", "synthetic_counting"}
    assert "greedy / mean of sampled" in summary[head - 1]
    for cells in rows.values():
        assert cells[1::3] == ["/", "/"]
        assert all(0.0 <= float(x) <= 1.0 for x in cells[0::3] + cells[2::3])

    run_dir = cwd / fields["run directory"]
    assert fields["run directory"] == "runs/tiny/version_0" and (run_dir / "stage_reports.json").is_file()
    ckpt = cwd / fields["last checkpoint"]
    assert ckpt.is_file() and ckpt == run_dir / "checkpoints" / "last.ckpt"

    tensorboard = shlex.split(fields["TensorBoard"])
    assert tensorboard[:2] == ["tensorboard", "--logdir"] and (BIN / "tensorboard").is_file()
    assert list((cwd / tensorboard[2]).glob("events.out.tfevents.*"))

    notebook = shlex.split(fields["notebook"].split("#")[0])
    assert notebook[0] == f"LIT_TRIUNE_LOG_DIR={fields['run directory']}" and notebook[1:3] == ["jupyter", "execute"]
    assert (BIN / "jupyter-execute").is_file() and (cwd / notebook[3]).resolve() == ROOT / "notebooks" / "training_dynamics.ipynb"

    export = shlex.split(fields["export policy"])
    assert export[0] == "lit-triune-export" and (cwd / export[1]) == ckpt
    out_dir = tmp_path / "hf"  # run it (the same entry point as the console script), elsewhere
    subprocess.run([sys.executable, "-m", "lit_triune.export", str(ckpt), str(out_dir)], check=True,
                   capture_output=True, cwd=cwd, timeout=300)
    assert (out_dir / "config.json").is_file()


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize(
    ("tty", "enable", "want", "enable_out"),
    [(True, None, StepProgressBar, True), (False, None, MetricsLines, False), (True, False, MetricsLines, False)],
)
def test_bar_on_a_terminal_lines_otherwise(tty: bool, enable: bool | None, want: type, enable_out: bool) -> None:
    added, enable_bar = progress_callbacks([], enable, stream=_Stream(tty))
    assert [type(c) for c in added] == [want, RunSummary] and enable_bar is enable_out


def test_a_configured_progress_bar_is_left_alone() -> None:
    from lightning.pytorch.callbacks import RichProgressBar

    added, enable_bar = progress_callbacks([RichProgressBar()], None, stream=_Stream(True))
    assert [type(c) for c in added] == [RunSummary] and enable_bar is None


def test_bar_counts_steps_and_shows_the_stage_and_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar's text (tqdm writes it to whatever sys.stdout is; here a buffer instead of a terminal)."""
    import torch
    from lightning.pytorch import LightningModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset

    class Staged(LightningModule):  # logs what TriuneModule logs, under the same keys
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        @property
        def in_warm_start(self) -> bool:
            return self.global_step < 2

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            loss = self.layer(batch[0]).pow(2).mean()
            if self.in_warm_start:
                self.log("warm_start/loss", 1.5)
            else:
                self.log_dict({"train/reward_mean": 0.25, "train/accuracy_mean": 0.5, "train/loss": 0.125})
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    trainer = Trainer(max_steps=5, callbacks=[StepProgressBar()], logger=False, enable_checkpointing=False,
                      enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(Staged(), DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=2))
    frames = [f.strip() for f in out.getvalue().split("\r") if f.strip()]
    assert any(re.match(r"warm-start: +\d+%.*\| 1/5 \[.*(s/step|step/s), loss=1\.500\]", f) for f in frames), frames
    last = frames[-1]
    assert re.match(r"RL: 100%.*\| 5/5 \[.*(s/step|step/s), reward=0\.250, accuracy=0\.500, loss=0\.125\]", last), last
    assert "v_num" not in out.getvalue() and "Epoch" not in out.getvalue()


def test_stage_table_shows_greedy_and_sampled_accuracy_when_the_reports_have_both(tmp_path: Path) -> None:
    from lit_triune.progress import stage_table

    reports = {"after_warm_start": {"step": 150, "sources": {"ocr": {"accuracy": 0.5, "sampled/accuracy": 0.25}}},
               "final": {"step": 250, "sources": {"ocr": {"accuracy": 0.625, "sampled/accuracy": 0.5}}}}
    (tmp_path / "stage_reports.json").write_text(json.dumps(reports))
    header, row = stage_table(tmp_path)
    assert "after_warm_start (step 150)" in header and "final (step 250)" in header
    assert row.split() == ["ocr", "0.500", "/", "0.250", "0.625", "/", "0.500"]
