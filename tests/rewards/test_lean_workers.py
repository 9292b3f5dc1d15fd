"""Verifier workers start from lit_triune.rewards.worker, never from the script that launched the trainer.

multiprocessing's forkserver/spawn children re-run the parent's `__main__` as `__mp_main__` before
unpickling their target; for `lit_triune/main.py` that imported Lightning and torch into every worker
(852 MB, ~8 s per start). lean_mp.py drops the main-module keys from the preparation data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lit_triune.rewards import VerifierPool
from lit_triune.rewards.lean_mp import check_supported

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import json, os, sys, time
import torch  # noqa: F401  -- module-level imports, as lit_triune/main.py has
import lightning.pytorch  # noqa: F401
from lit_triune.rewards import VerifierPool

if __name__ == "__main__":
    with VerifierPool(num_workers=1, timeout_s=10, start_method=sys.argv[1],
                      imports=("modules_probe",)) as pool:
        assert pool.wait_ready(120)
        result = pool.map(["x"], [{"verifier": "probe_modules", "ground_truth": "x"}])[0]
        status = open(f"/proc/{pool.worker_pids()[0]}/status").read()
        rss_kb = int(status.split("VmRSS:")[1].split()[0])
        print(json.dumps({"torch": result["torch_loaded"], "lightning": result["lightning_loaded"],
                          "failure": result["failure"], "rss_mb": rss_kb / 1024,
                          "parent_has_torch": "torch" in sys.modules}))
"""


def test_adapter_supports_this_python():
    check_supported()


@pytest.mark.slow
@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_worker_of_a_torch_script_never_imports_torch(tmp_path, start_method):
    script = tmp_path / "launch.py"  # a script file, so it is the __main__ that multiprocessing would re-run
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "support")])}
    out = subprocess.run([sys.executable, str(script), start_method], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["parent_has_torch"] is True
    assert seen["failure"] is None
    assert seen["torch"] == 0.0 and seen["lightning"] == 0.0
    assert seen["rss_mb"] < 200, seen


def test_worker_warnings_and_stderr_reach_the_parent_log(caplog):
    import logging

    with VerifierPool(num_workers=1, timeout_s=10, imports=("noisy_verifier",)) as pool:
        assert pool.wait_ready(60)
        with caplog.at_level(logging.WARNING, logger="lit_triune.rewards.worker"):
            out = pool.map(["x"], [{"verifier": "noisy", "ground_truth": "x"}])[0]
            pool.map(["x"], [{"verifier": "noisy", "ground_truth": "x"}])  # the log lines arrive before this result
    assert out["failure"] is None
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "lit_triune.rewards.worker")
    assert "divide by zero" in text  # a numpy RuntimeWarning
    assert "written to stderr" in text


_QUIET_SCRIPT = """
import logging, sys, time
logging.basicConfig(filename=sys.argv[1], level=logging.WARNING)  # the trainer's logging
from lit_triune.rewards import VerifierPool

sleep = {"verifier": "debug_sleep", "verifier_parm": {"seconds": 0.3}}
imports = ("lit_triune.rewards.verifiers.debug", "noisy_verifier")
with VerifierPool(num_workers=2, timeout_s=10, imports=imports) as pool:
    assert pool.wait_ready(120)
    pool.map(["x"] * 2, [{"verifier": "noisy", "ground_truth": "x"}] * 2)
    futures = [pool.submit("x", sleep) for _ in range(6)]
    time.sleep(0.1)  # closed with samples in flight: the workers' pipes break under them
pool = VerifierPool(num_workers=1, timeout_s=10, imports=imports)
assert pool.wait_ready(120)
futures = [pool.submit("x", sleep) for _ in range(3)]
time.sleep(0.1)
sys.exit(0)  # the trainer exits without closing the pool, a sample in flight
"""


@pytest.mark.slow
def test_worker_output_and_broken_pipes_stay_off_the_trainers_stderr(tmp_path):
    """Issue 17: worker numpy warnings and BrokenPipeError tracebacks landed in the trainer's stderr. Now the
    worker's warnings and stderr lines go to the trainer's logging, and a pool closed (or a trainer gone) with
    samples in flight prints nothing."""
    log = tmp_path / "trainer.log"
    out = subprocess.run([sys.executable, "-c", _QUIET_SCRIPT, str(log)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "support"), os.environ.get("PYTHONPATH", "")])},
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""
    text = log.read_text()
    assert "divide by zero" in text and "written to stderr" in text  # through the trainer's logging
    assert "Traceback" not in text and "BrokenPipe" not in text
