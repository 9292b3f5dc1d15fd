"""RemoteEngine against a rollout server process (HF engine, gloo weight group on CPU)."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from logprob_gap import sampling_gap
from PIL import Image

from lit_triune.rollout import wire
from lit_triune.rollout.base import Rollout, SamplingConfig
from lit_triune.rollout.remote import RemoteEngine, RolloutServerError, RolloutServerLost
from lit_triune.rollout.weight_group import buckets


def test_wire_round_trips_images_sampling_and_rollouts():
    images = [Image.new("RGB", (5, 3), (1, 2, 3)), None, Image.new("L", (2, 2), 7)]
    described, blobs = wire.encode_images(images)
    back = wire.decode_images(described, blobs)
    assert back[1] is None and back[0].tobytes() == images[0].tobytes() and back[2].mode == "L"
    s = SamplingConfig(n=3, max_new_tokens=5, temperature=0.7, seed=11)
    assert wire.sampling_from_dict(wire.sampling_to_dict(s)) == s
    r = Rollout(prompt_index=torch.tensor([0, 0]), completion_ids=[[1, 2], [3]],
                sampling_logprobs=[[-0.1234567891234, -2.0], [-0.5]], texts=["a", "<b>"],
                truncated=torch.tensor([True, False]), spurious_vision_tokens=torch.tensor([0, 1]))
    d = wire.rollout_from_dict(wire.rollout_to_dict(r))
    assert d.sampling_logprobs == r.sampling_logprobs and d.completion_ids == r.completion_ids
    assert d.truncated.tolist() == [True, False] and d.texts == r.texts
    with pytest.raises(wire.WireError):
        wire.decode_images([{"mode": "weird", "size": [1, 1], "blob": 0}], [b"x"])


def test_buckets_split_by_dtype_and_size():
    meta = [["a", "float32", [4]], ["b", "float32", [4]], ["c", "bfloat16", [2]], ["d", "float32", [100]]]
    assert list(buckets(meta, 32)) == [[0, 1], [2], [3]]
    assert list(buckets(meta, 16)) == [[0], [1], [2], [3]]


def test_unreachable_server_names_it():
    engine = RemoteEngine(host="127.0.0.1", port=1, launch=False, connect_timeout_s=0)
    with pytest.raises(RolloutServerLost, match=r"rollout server 127\.0\.0\.1:1 is unreachable"):
        engine.sync_weights(torch.nn.Linear(1, 1))


@pytest.fixture
def policy(tiny_model_path):
    from lit_triune.rl.policy import load_policy

    return load_policy(str(tiny_model_path)).eval()


def test_a_server_reachable_from_other_machines_needs_a_key(monkeypatch, capsys):
    from lit_triune.rollout.server import AUTHKEY_ENV, is_loopback, main

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("rollout-node")
    monkeypatch.delenv(AUTHKEY_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0", "--engine", "hf"])
    assert exit_info.value.code == 2
    assert AUTHKEY_ENV in capsys.readouterr().err


def test_server_samples_from_pushed_weights_and_dies_cleanly(policy, tiny_model_path, tiny_processor, tmp_path):
    prompts = [tiny_processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}],
        add_generation_prompt=True, tokenize=False) for t in ("How many?", "Colour?")]
    images = [Image.new("RGB", (112, 112), (220, 30, 30)), Image.new("RGB", (84, 140), (30, 30, 220))]
    sampling = SamplingConfig(n=3, max_new_tokens=10, seed=5)
    engine = RemoteEngine(engine="hf", model_path=str(tiny_model_path), threads=1, log_dir=str(tmp_path))
    try:
        engine.bind(policy, tiny_processor)
        with torch.no_grad():  # move the policy away from the checkpoint the server loaded
            for p in policy.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        engine.sync_weights(policy)
        r = engine.generate(prompts, images, sampling)
        assert len(r.completion_ids) == 6 and r.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
        moved = sampling_gap(policy, tiny_processor, prompts, images, r)
        assert moved <= 1e-5  # the server sampled from the pushed weights ...
        from lit_triune.rl.policy import load_policy

        initial = load_policy(str(tiny_model_path)).eval()
        assert sampling_gap(initial, tiny_processor, prompts, images, r) > 1e-2  # ... not from the checkpoint's
        again = engine.generate(prompts, images, sampling)
        assert again.completion_ids == r.completion_ids  # seeded: reproducible
        # a rollout in flight is sampled from the weights pushed before it was submitted, not after
        import copy

        before = copy.deepcopy(policy)
        in_flight = engine.submit(prompts, images, SamplingConfig(n=3, max_new_tokens=10, seed=6))
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        engine.sync_weights(policy)
        assert engine._pending_push is not None  # the push returned without waiting for the server's reply
        old = in_flight.result()
        assert sampling_gap(before, tiny_processor, prompts, images, old) <= 1e-5 and not in_flight.regenerated
        assert sampling_gap(policy, tiny_processor, prompts, images, old) > 1e-2
        assert sampling_gap(policy, tiny_processor, prompts, images, engine.generate(prompts, images, sampling)) <= 1e-5
        pid = engine._server_pid
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RolloutServerLost, match=rf"rollout server 127\.0\.0\.1:\d+, pid {pid}"):
            engine.generate(prompts, images, sampling)
    finally:
        engine.close()


def test_a_failed_push_is_raised_and_nothing_is_sampled_from_half_loaded_weights(policy, tiny_model_path,
                                                                                tmp_path, monkeypatch):
    """A push the server cannot load (a name its model lacks, here in the first of several buckets): the server
    still takes every bucket (the pusher's broadcast completes), the error is raised at the trainer's next call
    (the first push of a connection at once, later ones at the next generate), the server refuses to sample
    until a push succeeds, and then samples again."""
    import lit_triune.rollout.vllm_engine as vllm_engine_mod

    real = vllm_engine_mod.checkpoint_weights
    broken = {"on": False}

    def weights_with_a_stranger(model):
        if broken["on"]:
            yield "model.no_such_layer.weight", torch.zeros(4)
        yield from real(model)

    monkeypatch.setattr(vllm_engine_mod, "checkpoint_weights", weights_with_a_stranger)
    prompts = ["<|im_start|>user\nsay<|im_end|>\n<|im_start|>assistant\n"]
    sampling = SamplingConfig(n=2, max_new_tokens=4, seed=1)
    engine = RemoteEngine(engine="hf", model_path=str(tiny_model_path), threads=1, bucket_mb=1, log_dir=str(tmp_path))
    try:
        engine.sync_weights(policy)  # the connection's first push: settled at once
        engine.generate(prompts, [None], sampling)
        broken["on"] = True
        engine.sync_weights(policy)  # returns at once ...
        with pytest.raises(RolloutServerError, match="no_such_layer"):  # ... the failure comes with the next call
            engine.generate(prompts, [None], sampling)
        with pytest.raises(RolloutServerError, match="weight push 2 failed"):  # and nothing is sampled meanwhile
            engine.generate(prompts, [None], sampling)
        broken["on"] = False
        engine.sync_weights(policy)
        assert len(engine.generate(prompts, [None], sampling).completion_ids) == 2
    finally:
        engine.close()


@pytest.mark.slow
def test_retry_relaunches_and_repushes(policy, tiny_model_path, tiny_processor, tmp_path):
    prompts = ["<|im_start|>user\nsay<|im_end|>\n<|im_start|>assistant\n"]
    sampling = SamplingConfig(n=2, max_new_tokens=6, seed=1)
    engine = RemoteEngine(engine="hf", model_path=str(tiny_model_path), threads=1, on_server_lost="retry",
                          retries=2, retry_wait_s=0.1, log_dir=str(tmp_path))
    try:
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        engine.sync_weights(policy)
        first = engine.generate(prompts, [None], sampling)
        pid = engine._server_pid
        os.kill(pid, signal.SIGKILL)
        engine._proc.wait()
        second = engine.generate(prompts, [None], sampling)  # relaunched, weights pushed again
        assert engine._server_pid != pid and engine.reconnects == 1
        assert second.completion_ids == first.completion_ids
        assert sum(second.sampling_logprobs, []) == pytest.approx(sum(first.sampling_logprobs, []), abs=1e-6)
        # lost with a rollout in flight: sampled again on a relaunched server, from the current weights
        in_flight = engine.submit(prompts, [None], sampling)
        os.kill(engine._server_pid, signal.SIGKILL)
        engine._proc.wait()
        third = in_flight.result()
        assert in_flight.regenerated and engine.reconnects == 2 and third.completion_ids == first.completion_ids
    finally:
        engine.close()
    assert engine._proc is None


@pytest.mark.slow
def test_launched_server_dies_with_its_trainer(tiny_model_path, tmp_path):
    """A trainer killed with SIGKILL (no close, no atexit) takes its launched server with it."""
    import subprocess
    import sys
    import time

    script = ("import os, signal, sys, torch\n"
              "from lit_triune.rollout.remote import RemoteEngine\n"
              f"e = RemoteEngine(engine='hf', model_path={str(tiny_model_path)!r}, threads=1, log_dir={str(tmp_path)!r})\n"
              "e.sync_weights(torch.nn.Module())\n"
              "print(e._server_pid, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    pid = int(out.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"rollout server pid {pid} outlived its trainer")


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_server_samples_from_pushed_weights(policy, tiny_model_path, tiny_processor, tmp_path):
    pytest.importorskip("vllm")
    prompts = [tiny_processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}],
        add_generation_prompt=True, tokenize=False)]
    images = [Image.new("RGB", (112, 112), (220, 30, 30))]
    engine = RemoteEngine(engine="vllm", model_path=str(tiny_model_path), threads=1, log_dir=str(tmp_path),
                          engine_kwargs={"max_model_len": 512, "max_num_seqs": 16, "kv_cache_memory_bytes": 64 << 20})
    try:
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        engine.sync_weights(policy)
        r = engine.generate(prompts, images, SamplingConfig(n=4, max_new_tokens=10, seed=5))
        gap = sampling_gap(policy, tiny_processor, prompts, images, r)
        print(f"\nvLLM server: sampled-token log-prob gap to the pushed policy {gap:.2e}")
        assert gap <= 1e-5
    finally:
        engine.close()


@pytest.mark.slow
def test_ranks_sharing_a_server_sample_from_the_weights_they_synced(policy, tiny_model_path, tiny_processor, tmp_path,
                                                                   monkeypatch):
    """share: true: rank 0 launches the server and pushes; rank 1 only counts its syncs, and its request waits
    on the server until rank 0's push of the same version has arrived."""
    import copy
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prompts = [tiny_processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}],
        add_generation_prompt=True, tokenize=False)]
    images = [Image.new("RGB", (112, 112), (220, 30, 30))]
    monkeypatch.setenv("LIT_TRIUNE_ROLLOUT_KEY", "shared-secret")  # under torchrun rank 0's key is broadcast
    ranks = [RemoteEngine(engine="hf", model_path=str(tiny_model_path), threads=1, share=True, port=port,
                          log_dir=str(tmp_path), connect_timeout_s=120) for _ in range(2)]
    ranks[0]._rank, ranks[1]._rank = 0, 1
    try:
        for engine in ranks:  # fit start: every rank syncs once (rank 0 launches and pushes)
            engine.sync_weights(policy)
        moved = copy.deepcopy(policy)
        with torch.no_grad():
            for p in moved.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        ranks[1].sync_weights(moved)  # rank 1 first: its next request must wait for rank 0's push
        in_flight = ranks[1].submit(prompts, images, SamplingConfig(n=2, max_new_tokens=8, seed=2))
        ranks[0].sync_weights(moved)
        r = in_flight.result()
        assert not ranks[1].launches and ranks[1]._server_pid == ranks[0]._server_pid
        assert sampling_gap(moved, tiny_processor, prompts, images, r) <= 1e-5
    finally:
        for engine in ranks[::-1]:
            engine.close()
