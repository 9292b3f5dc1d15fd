"""VerifierPool: input order, hard timeouts, a worker SIGKILLed mid-batch, crashes, hostile completions."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lit_triune.rewards import VerifierPool, score
from lit_triune.rewards.registry import DIAGNOSTIC_MODULE

DEBUG = (DIAGNOSTIC_MODULE,)  # debug_sleep / debug_crash are opt-in: the workers import them
SLEEP = {"verifier": "debug_sleep", "verifier_parm": {"seconds": 0.3}}


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(num_workers=2, timeout_s=2.0, imports=DEBUG) as p:
        assert p.wait_ready(60)
        yield p


def _sleepy(accuracy: float, seconds: float = 0.05) -> dict:
    return {"verifier": "debug_sleep", "verifier_parm": {"seconds": seconds, "accuracy": accuracy}}


def test_results_come_back_in_input_order(pool):
    # later samples finish first (shorter sleeps), results must still follow input order
    rms = [_sleepy(i / 10, seconds=0.25 - 0.04 * i) for i in range(6)]
    out = pool.map(["x"] * 6, rms)
    assert [r["accuracy"] for r in out] == [i / 10 for i in range(6)]


def test_pool_matches_in_process_scores(pool):
    rms = [
        {"verifier": "mathverify", "ground_truth": "\\frac{1}{2}"},
        {"verifier": "counting", "ground_truth": 2},
    ]
    responses = ["<think>a</think><answer>0.5</answer>", "<answer>two</answer>"]
    via_pool = pool.score_batch(responses, rms)
    in_process = [score(r, rm) for r, rm in zip(responses, rms, strict=True)]
    assert [repr(sorted(r.items())) for r in via_pool] == [
        repr(sorted(r.items())) for r in in_process
    ]  # NaN-safe


def test_hard_timeout_kills_and_replaces_the_worker(pool):
    before = pool.failure_counts().get("debug_sleep", {}).get("timeout", 0)
    futures = [pool.submit("x", _sleepy(1.0, seconds=600)), pool.submit("x", _sleepy(1.0))]
    # The 600 s sample is cut at the pool's 2 s timeout: its result exists long before the sample could end
    # (a bound on waiting, not a speed figure; result() raises TimeoutError if the pool waited for it).
    out = [f.result(timeout=120) for f in futures]
    assert out[0]["failure"] == "timeout" and out[1]["failure"] is None
    assert pool.failure_counts()["debug_sleep"]["timeout"] == before + 1
    assert pool.map(["x"], [_sleepy(0.5)])[0]["accuracy"] == 0.5  # the replacement works


def _kill_one_worker_mid_batch(p: VerifierPool, n: int) -> list[dict]:
    futures = [p.submit("x", SLEEP) for _ in range(n)]
    time.sleep(0.15)  # both workers are inside a 0.3 s sample
    os.kill(p.worker_pids()[0], signal.SIGKILL)
    return [f.result(timeout=30) for f in futures]


def test_worker_killed_mid_batch_is_retried_once():
    with VerifierPool(num_workers=2, timeout_s=5.0, imports=DEBUG) as p:
        assert p.wait_ready(60)
        out = _kill_one_worker_mid_batch(p, 6)
        assert len(out) == 6 and all(r["failure"] is None for r in out)  # the killed sample was retried
        assert p.failure_counts()["debug_sleep"]["crash"] == 1


def test_worker_killed_mid_batch_without_retry_scores_zero():
    with VerifierPool(num_workers=2, timeout_s=5.0, retry_crashed=False, imports=DEBUG) as p:
        assert p.wait_ready(60)
        out = _kill_one_worker_mid_batch(p, 6)
        assert [r["failure"] for r in out].count("crash") == 1
        assert sum(r["reward"] == 0.0 for r in out) == 1
        assert p.failure_counts()["debug_sleep"]["crash"] == 1


def test_a_sample_that_always_crashes_its_worker(pool):
    out = pool.map(["x", "x"], [{"verifier": "debug_crash"}, _sleepy(1.0)])
    assert out[0]["failure"] == "crash" and out[1]["accuracy"] == 1.0
    assert pool.failure_counts()["debug_crash"]["crash"] == 2  # first try and the retry


def test_unpicklable_spec_fails_its_sample_only(pool):
    bad = {"verifier": "counting", "ground_truth": 1, "verifier_parm": {"hook": lambda: None}}
    out = pool.map(
        ["<answer>1</answer>", "<answer>1</answer>"], [bad, {"verifier": "counting", "ground_truth": 1}]
    )
    assert out[0]["failure"] == "spec" and "could not be sent" in out[0]["detail"]
    assert out[1]["accuracy"] == 1.0


def test_zero_workers_scores_in_process():
    with VerifierPool(num_workers=0) as p:
        out = p.map(
            ["<answer>3</answer>", "<answer>?</answer>"], [{"verifier": "counting", "ground_truth": 3}] * 2
        )
        assert [r["accuracy"] for r in out] == [1.0, 0.0]
        assert p.failure_counts() == {"counting": {"timeout": 0, "crash": 0, "parse": 1, "spec": 0}}


def test_rejects_fork_and_bad_arguments():
    with pytest.raises(ValueError, match="fork"):
        VerifierPool(num_workers=1, start_method="fork")
    with pytest.raises(ValueError, match="num_workers"):
        VerifierPool(num_workers=-1)


def test_close_resolves_samples_in_flight():
    p = VerifierPool(num_workers=1, timeout_s=5.0, imports=DEBUG)
    assert p.wait_ready(60)
    futures = [p.submit("x", _sleepy(1.0, seconds=2.0)) for _ in range(3)]
    time.sleep(0.1)
    p.close()
    outs = [f.result(timeout=10) for f in futures]
    assert all(o["failure"] == "crash" and "pool closed" in o["detail"] for o in outs)
    with pytest.raises(RuntimeError, match="closed"):
        p.submit("x", _sleepy(1.0))


def test_a_pool_left_open_at_exit_is_closed_and_starts_no_replacement():
    """At interpreter exit multiprocessing terminates the workers; a pool still open then used to replace them
    from its dispatcher thread while the interpreter shut down (a half-started child printed an EOFError
    traceback into the trainer's stderr). The pool's exit handler closes it first; a closed pool never
    replaces a worker."""
    from lit_triune.rewards import pool as pool_module

    p = VerifierPool(num_workers=1, timeout_s=5.0, imports=DEBUG)
    assert p.wait_ready(60)
    future = p.submit("x", _sleepy(1.0, seconds=2.0))
    time.sleep(0.1)
    pool_module._close_open_pools()  # what atexit runs
    out = future.result(timeout=10)
    assert out["failure"] == "crash" and "pool closed" in out["detail"]
    assert p.worker_pids() == []
    p._replace(p._workers[0])  # the dispatcher's reaction to a dead worker, after the close
    assert p.worker_pids() == []
    assert p not in pool_module._OPEN_POOLS
