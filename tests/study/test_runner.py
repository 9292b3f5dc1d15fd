"""The runner's bookkeeping without training: what counts as finished, skip / resume / restart, the order
and parallelism of jobs, and refusing a run directory made with another config."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lit_triune.study import configs, layout, runner
from lit_triune.study.runner import Job, Outcome, Settings, StaleRunError, execute, plan, run_job
from lit_triune.study.variants import resolve

TINY = Path(__file__).resolve().parents[2] / "conf" / "tiny.yaml"


def _finish(run: Path, stages: tuple[str, ...] = ("init", "final")) -> None:
    layout.log_dir(run).mkdir(parents=True, exist_ok=True)
    (layout.log_dir(run) / layout.STAGE_REPORTS).write_text(json.dumps({s: {"step": 0, "sources": {}} for s in stages}))


def _job(tmp_path: Path, name: str, after: str | None = None, kind: str = "rl") -> Job:
    return Job(name, kind, 0, tmp_path / name, {"model": {"seed": 0}}, after)


def test_finished_means_a_final_stage_report(tmp_path: Path) -> None:
    run = tmp_path / "recipe" / "seed_0"
    assert not layout.is_finished(run)
    _finish(run, ("init",))  # interrupted after the first report
    assert not layout.is_finished(run)
    _finish(run)
    assert layout.is_finished(run)
    (layout.log_dir(run) / layout.STAGE_REPORTS).write_text('{"fin')  # being written
    assert not layout.is_finished(run)


def test_plan_and_skip_finished(tmp_path: Path) -> None:
    settings = Settings(config=TINY, seeds=[0, 1], variants=resolve(["recipe", "off_policy"]), out=tmp_path,
                        rl_steps=6, warm_start_steps=3, val_every=2)
    jobs, steps = plan(settings)
    assert steps["rl_steps"] == 6 and steps["warm_start_steps"] == 3 and steps["val_every"] == 2
    assert [j.name for j in jobs] == ["warm_start/seed_0", "warm_start/seed_1", "recipe/seed_0", "off_policy/seed_0",
                                      "recipe/seed_1", "off_policy/seed_1"]
    assert {j.after for j in jobs if j.kind == "rl" and j.seed == 1} == {"warm_start/seed_1"}
    assert not any(runner.is_done(j, tmp_path) for j in jobs)
    (layout.policy_dir(tmp_path, 0)).mkdir(parents=True)
    (layout.policy_dir(tmp_path, 0) / "config.json").write_text("{}")
    _finish(layout.run_dir(tmp_path, "recipe", 0))
    assert [j.name for j in jobs if runner.is_done(j, tmp_path)] == ["warm_start/seed_0", "recipe/seed_0"]
    # defaults come from the config: RL = trainer.max_steps - model.warm_start_steps
    base = configs.load(TINY)
    _, steps = plan(Settings(config=TINY, seeds=[0], variants=resolve(["recipe"]), out=tmp_path))
    assert steps["rl_steps"] == base["trainer"]["max_steps"] - base["model"]["warm_start_steps"]
    assert steps["warm_start_steps"] == base["model"]["warm_start_steps"]


def test_execute_order_dependencies_and_parallelism(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, "ws0", kind="warm_start"), _job(tmp_path, "ws1", kind="warm_start"),
            _job(tmp_path, "a0", "ws0"), _job(tmp_path, "b0", "ws0"), _job(tmp_path, "a1", "ws1"),
            _job(tmp_path, "b1", "ws1"), _job(tmp_path, "c0", "ws0")]
    started, active, peak, lock = [], [0], [0], threading.Lock()

    def run_one(job: Job) -> Outcome:
        with lock:
            started.append(job.name)
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return Outcome(job.name != "ws1", "fake")

    results = execute(jobs, 2, run_one, done=lambda job: job.name == "c0", say=lambda _: None)
    assert peak[0] == 2
    assert set(started) == {"ws0", "ws1", "a0", "b0"}  # c0 finished earlier; a1, b1 start from a failed ws1
    assert started.index("a0") > started.index("ws0") and started.index("b0") > started.index("ws0")
    assert results["c0"].ok and results["c0"].note.startswith("finished earlier")
    assert not results["a1"].ok and "ws1 failed" in results["a1"].note
    assert not results["ws1"].ok and results["a0"].ok


def test_execute_reports_an_exception_as_a_failed_run(tmp_path: Path) -> None:
    def boom(job: Job) -> Outcome:
        raise OSError("disk full")

    results = execute([_job(tmp_path, "x")], 1, boom, done=lambda job: False, say=lambda _: None)
    assert not results["x"].ok and "disk full" in results["x"].note


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replaces the subprocess: records the command, 'trains' by writing the final report."""
    seen: list[list[str]] = []

    def fake_call(cmd: list[str], run: Path, threads: int, what: str) -> tuple[int, float]:
        seen.append(cmd)
        resuming = any(a.startswith("--ckpt_path=") for a in cmd)
        if resuming and (run / "broken").exists():
            return 1, 0.0
        if resuming and (run / "ends_without_final").exists():  # killed after its last checkpoint
            return 0, 1.0
        _finish(run)
        return 0, 1.0

    monkeypatch.setattr(runner, "_call", fake_call)
    return seen


def test_run_job_resumes_from_last_checkpoint(tmp_path: Path, calls: list[list[str]]) -> None:
    job = _job(tmp_path, "recipe")
    (job.run / layout.CHECKPOINTS).mkdir(parents=True)
    (job.run / layout.CHECKPOINTS / "last.ckpt").write_bytes(b"x")
    _finish(job.run, ("init",))  # the dead run's first report stays: the resumed run continues its log dir
    outcome = run_job(job, threads=1)
    assert outcome.ok and "resumed" in outcome.note
    assert calls == [[*calls[0][:5], f"--ckpt_path={job.run / layout.CHECKPOINTS / 'last.ckpt'}"]]
    assert calls[0][2:5] == ["fit", "-c", str(job.run / layout.CONFIG)]
    assert configs.load(job.run / layout.CONFIG) == job.config  # written for the run to reproduce alone


def test_run_job_restarts_without_checkpoint_and_after_a_failed_resume(tmp_path: Path, calls: list[list[str]]) -> None:
    job = _job(tmp_path, "recipe")
    layout.log_dir(job.run).mkdir(parents=True)
    (layout.log_dir(job.run) / "events.out.tfevents.dead").write_bytes(b"")
    assert run_job(job, threads=1).ok
    assert len(calls) == 1 and not any(a.startswith("--ckpt_path") for a in calls[0])
    assert not (layout.log_dir(job.run) / "events.out.tfevents.dead").exists()  # a restart does not mix logs
    calls.clear()
    (job.run / layout.CHECKPOINTS).mkdir(parents=True)
    (job.run / layout.CHECKPOINTS / "last.ckpt").write_bytes(b"cut short")
    (job.run / "broken").write_text("")
    assert run_job(job, threads=1).ok
    assert [any(a.startswith("--ckpt_path") for a in c) for c in calls] == [True, False]
    assert not (job.run / layout.CHECKPOINTS / "last.ckpt").exists()


def test_run_job_restarts_when_a_resume_ends_without_the_final_report(tmp_path: Path, calls: list[list[str]]) -> None:
    job = _job(tmp_path, "recipe")
    (job.run / layout.CHECKPOINTS).mkdir(parents=True)
    (job.run / layout.CHECKPOINTS / "last.ckpt").write_bytes(b"at max_steps")
    (job.run / "ends_without_final").write_text("")
    outcome = run_job(job, threads=1)
    assert outcome.ok and "resumed" not in outcome.note
    assert [any(a.startswith("--ckpt_path") for a in c) for c in calls] == [True, False]


def test_a_run_made_with_another_config_is_refused(tmp_path: Path) -> None:
    job = _job(tmp_path, "recipe")
    runner.check_not_stale(job)  # nothing there yet
    configs.write(job.config, job.run / layout.CONFIG, header="a comment does not count")
    runner.check_not_stale(job)
    job.config = {"model": {"seed": 0, "lr": 1.0}}
    with pytest.raises(StaleRunError, match=r"(?s)another config.*\+  lr: 1\.0.*delete"):
        runner.check_not_stale(job)


def test_child_env_puts_this_code_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = runner.child_env(1)
    assert env["PYTHONPATH"].split(":")[:2] == [str(runner.ROOT), "/elsewhere"]
    assert env["OMP_NUM_THREADS"] == "1"


def test_first_run_prefers_a_finished_recipe_run(tmp_path: Path) -> None:
    assert layout.first_run(tmp_path) is None
    for variant, seed in (("freeze_none", 0), ("recipe", 1), ("recipe", 2)):
        layout.run_dir(tmp_path, variant, seed).mkdir(parents=True)
    assert layout.first_run(tmp_path) == layout.run_dir(tmp_path, "recipe", 1)
    _finish(layout.run_dir(tmp_path, "recipe", 2))
    assert layout.first_run(tmp_path) == layout.run_dir(tmp_path, "recipe", 2)
