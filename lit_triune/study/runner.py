"""Runs a study: per seed one warm-start (exported as an HF directory), then each variant's RL stage from it.

Every run is a `python lit_triune/main.py fit -c <run>/config.yaml` subprocess, so each is reproducible on
its own. A finished run is skipped, an interrupted one resumes from its last checkpoint (or restarts when
it has none); a run directory made with another config is an error, never silently reused.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_triune.study import configs, layout
from lit_triune.study.variants import Variant

ROOT = Path(__file__).resolve().parents[2]  # the repository: subprocesses run here, with this code first on the path
MAIN = ROOT / "lit_triune" / "main.py"


@dataclass
class Settings:
    config: Path
    seeds: list[int]
    variants: list[Variant]
    out: Path
    rl_steps: int | None = None  # None: trainer.max_steps - model.warm_start_steps of the config
    warm_start_steps: int | None = None  # None: model.warm_start_steps of the config
    val_every: int | None = None  # None: a fifth of the RL steps
    jobs: int = 1
    threads: int | None = None  # torch threads per run; None: cores // jobs
    overrides: list[str] = field(default_factory=list)

    def resolved(self, base: dict[str, Any]) -> dict[str, int]:
        rl = self.rl_steps if self.rl_steps is not None else configs.rl_steps(base)
        ws = self.warm_start_steps if self.warm_start_steps is not None else configs.warm_start_steps(base)
        val = self.val_every if self.val_every is not None else max(1, rl // 5)
        threads = self.threads or max(1, (os.cpu_count() or 1) // max(1, self.jobs))
        return {"rl_steps": rl, "warm_start_steps": ws, "val_every": val, "threads": threads}


@dataclass
class Job:
    name: str  # "warm_start/seed_0", "recipe/seed_0"
    kind: str  # "warm_start" | "rl"
    seed: int
    run: Path
    config: dict[str, Any]
    after: str | None = None  # the job whose output this one starts from


@dataclass
class Outcome:
    ok: bool
    note: str
    wall_time_s: float = 0.0


class StaleRunError(RuntimeError):
    """A run directory holds a run made with another config."""


def plan(settings: Settings) -> tuple[list[Job], dict[str, Any]]:
    """The jobs of a study (warm-starts first), and the resolved settings. Pure: writes nothing."""
    base = configs.apply_overrides(configs.load(settings.config), settings.overrides)
    steps = settings.resolved(base)
    out = Path(settings.out).resolve()
    jobs: list[Job] = []
    for seed in settings.seeds:
        run = layout.warm_start_dir(out, seed)
        jobs.append(Job(f"{layout.WARM_START}/{layout.seed_dir_name(seed)}", "warm_start", seed, run,
                        configs.warm_start_config(base, run, seed, steps["warm_start_steps"])))
    for seed in settings.seeds:
        for variant in settings.variants:
            run = layout.run_dir(out, variant.name, seed)
            cfg = configs.rl_config(variant.edit(base), run, seed, layout.policy_dir(out, seed), steps["rl_steps"],
                                    steps["val_every"])
            jobs.append(Job(f"{variant.name}/{layout.seed_dir_name(seed)}", "rl", seed, run, cfg,
                            after=f"{layout.WARM_START}/{layout.seed_dir_name(seed)}"))
    return jobs, steps


def is_done(job: Job, out: Path) -> bool:
    if job.kind == "warm_start":
        return layout.policy_ready(out, job.seed)
    return layout.is_finished(job.run)


def check_not_stale(job: Job) -> None:
    """Refuses a run directory whose config.yaml differs from the one this study would write."""
    path = job.run / layout.CONFIG
    if not path.is_file():
        return
    old, new = configs.dumps(configs.load(path)), configs.dumps(job.config)
    if old != new:
        diff = "\n".join(list(difflib.unified_diff(old.splitlines(), new.splitlines(), "on disk", "now", n=0,
                                                   lineterm=""))[2:14])
        raise StaleRunError(f"{job.run} was made with another config:\n{diff}\nUse another --out, or delete "
                            f"{job.run} to redo that run.")


def child_env(threads: int) -> dict[str, str]:
    """This code first on the path (a worktree's, not an installed copy), one thread budget per run."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), VLLM_ENABLE_V1_MULTIPROCESSING="0",
               TOKENIZERS_PARALLELISM="false")
    return env


def _record(run: Path, entry: dict[str, Any]) -> None:
    path = run / layout.RUN_RECORD
    data = json.loads(path.read_text()) if path.is_file() else {"launches": []}
    data["launches"].append(entry)
    path.write_text(json.dumps(data, indent=2))


def _call(cmd: list[str], run: Path, threads: int, what: str) -> tuple[int, float]:
    started, load_before = time.time(), os.getloadavg()
    with open(run / layout.TRAIN_LOG, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        rc = subprocess.run(cmd, cwd=ROOT, env=child_env(threads), stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.time() - started
    _record(run, {"what": what, "command": cmd, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                  "wall_time_s": round(wall, 1), "returncode": rc, "threads": threads,
                  "load_before": [round(x, 2) for x in load_before],
                  "load_after": [round(x, 2) for x in os.getloadavg()]})
    return rc, wall


def run_job(job: Job, threads: int) -> Outcome:
    """Trains one run — resuming from its last checkpoint when it has one, from scratch when it has none or
    the resume does not end the run (a checkpoint cut short, a kill between the last checkpoint and the final
    report) — then exports a warm-start's policy."""
    job.run.mkdir(parents=True, exist_ok=True)
    configs.write(job.config, job.run / layout.CONFIG,
                  header=f"lit-triune study run {job.name}: python lit_triune/main.py fit -c {job.run / layout.CONFIG}")
    fit = [sys.executable, str(MAIN), "fit", "-c", str(job.run / layout.CONFIG)]
    ckpt = layout.last_checkpoint(job.run)
    total, rc, resumed = 0.0, 1, False
    for resume_from in ([ckpt] if ckpt else []) + [None]:
        if resume_from is None:
            for stale in (layout.log_dir(job.run), job.run / layout.CHECKPOINTS):
                shutil.rmtree(stale, ignore_errors=True)  # a restart must not mix with a dead run's events
        cmd = [*fit, f"--ckpt_path={resume_from}"] if resume_from else fit
        rc, wall = _call(cmd, job.run, threads, "fit (resumed)" if resume_from else "fit")
        total += wall
        resumed = resume_from is not None
        if rc == 0 and (layout.is_finished(job.run) if job.kind == "rl" else layout.last_checkpoint(job.run)):
            break
    if rc != 0:
        return Outcome(False, f"exit code {rc}; see {job.run / layout.TRAIN_LOG}", total)
    if job.kind == "rl":
        if not layout.is_finished(job.run):
            return Outcome(False, f"no final stage report in {layout.log_dir(job.run)}", total)
        return Outcome(True, "trained" + (" (resumed)" if resumed else ""), total)
    return _export(job, threads, total)


def _export(job: Job, threads: int, total: float) -> Outcome:
    ckpt = layout.last_checkpoint(job.run)
    if ckpt is None:
        return Outcome(False, f"the warm-start wrote no {job.run / layout.CHECKPOINTS / 'last.ckpt'}", total)
    policy = job.run / layout.POLICY
    staging = job.run / f".{layout.POLICY}-staging"
    shutil.rmtree(staging, ignore_errors=True)
    rc, wall = _call([sys.executable, "-m", "lit_triune.export", str(ckpt), str(staging)], job.run, threads, "export")
    total += wall
    if rc != 0 or not (staging / "config.json").is_file():
        return Outcome(False, f"export failed (exit code {rc}); see {job.run / layout.TRAIN_LOG}", total)
    shutil.rmtree(policy, ignore_errors=True)
    staging.rename(policy)  # atomic: a policy directory with config.json is complete
    return Outcome(True, f"trained, exported to {policy}", total)


def execute(jobs: list[Job], parallel: int, run_one: Callable[[Job], Outcome],
            done: Callable[[Job], bool], say: Callable[[str], None] = print) -> dict[str, Outcome]:
    """Runs `jobs` at most `parallel` at a time, each after the job it starts from; a finished job is skipped,
    one whose predecessor failed is not run."""
    results: dict[str, Outcome] = {}
    pending = list(jobs)
    running: dict[Future[Outcome], Job] = {}
    lock = threading.Lock()
    n = len(jobs)

    def log(msg: str) -> None:
        with lock:
            say(msg)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        while pending or running:
            for job in list(pending):
                if job.after is not None and job.after not in results:
                    continue  # its predecessor has not finished yet
                if done(job):
                    pending.remove(job)
                    results[job.name] = Outcome(True, "finished earlier: skipped")
                    log(f"[{len(results)}/{n}] {job.name}: finished earlier, skipped")
                    continue
                if job.after is not None and not results[job.after].ok:
                    pending.remove(job)
                    results[job.name] = Outcome(False, f"not run: {job.after} failed")
                    log(f"[{len(results)}/{n}] {job.name}: not run ({job.after} failed)")
                    continue
                if len(running) >= parallel:
                    break
                pending.remove(job)
                log(f"[start] {job.name}" + (" (resuming)" if layout.last_checkpoint(job.run) else ""))
                running[pool.submit(run_one, job)] = job
            if not running:
                if pending:
                    raise RuntimeError(f"jobs waiting on jobs that never ran: {[j.name for j in pending]}")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as err:  # noqa: BLE001 -- one broken run must not stop the others
                    outcome = Outcome(False, f"{type(err).__name__}: {err}")
                results[job.name] = outcome
                log(f"[{len(results)}/{n}] {job.name}: {'ok' if outcome.ok else 'FAILED'} in "
                    f"{outcome.wall_time_s / 60:.1f} min, {outcome.note}")
    return results


def run_study(settings: Settings, say: Callable[[str], None] = print) -> dict[str, Outcome]:
    jobs, steps = plan(settings)
    out = Path(settings.out).resolve()
    for job in jobs:
        check_not_stale(job)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({
        "config": str(settings.config), "seeds": settings.seeds, "variants": [v.name for v in settings.variants],
        "overrides": settings.overrides, "jobs": settings.jobs, **steps,
        "command": " ".join([os.path.basename(sys.executable), "-m", "lit_triune.study", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "load_at_start": [round(x, 2) for x in os.getloadavg()]},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, indent=2))
    say(f"study: {len(settings.seeds)} seed(s) x {len(settings.variants)} variant(s) from {settings.config}; "
        f"warm-start {steps['warm_start_steps']} steps, RL {steps['rl_steps']} rollout batches, validation every "
        f"{steps['val_every']}; {settings.jobs} job(s) at a time, {steps['threads']} thread(s) each -> {out}")
    return execute(jobs, settings.jobs, lambda job: run_job(job, steps["threads"]), lambda job: is_done(job, out), say)
