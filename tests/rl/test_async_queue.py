"""AsyncRollouts' queue:

- its helper thread, besides scoring each in-flight rollout, prepares that rollout's update inputs (the prompts
  through the processor and, with a frozen unsharded ViT, the image features), equal to what the trainer computes
  itself; with a sharded policy the ViT (a collective) is left to the trainer's thread;
- each batch is sampled with the seed the on-policy loop gives the same batch (common random numbers: the two
  loops differ by the policy's lag alone), at any staleness.
- submissions at one step (dynamic sampling's refill steps take no optimizer step) get seeds of their own, kept
  across a checkpoint.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rl_fit import tiny_data, tiny_module

from lit_triune.models.policy_inputs import encode_prompts
from lit_triune.rl import async_rollouts
from lit_triune.rl.async_rollouts import AsyncRollouts
from lit_triune.rl.rollout_step import frozen_image_features


class _SubmittingEngine:
    """An engine with `submit`, generating in this process (the HF engine) when the handle is first waited on;
    like a remote request, a handle generates once and every later wait gets that rollout."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        self.engine = engine
        self.seeds: list[int] = []  # each submission's sampling seed
        self._lock = threading.Lock()  # one generation at a time: the helper threads share the module's model

    def submit(self, prompts, images, sampling):  # noqa: ANN001, ANN201
        self.seeds.append(sampling.seed)
        done = []

        def result():  # noqa: ANN202
            with self._lock:
                if not done:
                    done.append(self.engine.generate(prompts, images, sampling))
            return done[0]

        return SimpleNamespace(wait=result, result=result, regenerated=False)


def _close(queue: AsyncRollouts) -> None:
    """Let the helper finish the rollouts still in flight first: this engine generates in the helper's thread with
    the module's model, which the next test uses too."""
    for item in queue.queue:
        if item.scoring is not None:  # None: restored from a checkpoint, completed already
            item.scoring.exception()
    queue.close()


@pytest.fixture(scope="module")
def module_and_batch(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    module = tiny_module(async_rollouts=True, group_size=2)
    module.configure_model()
    data = tiny_data(Path(tmp_path_factory.mktemp("async_queue")), batch_size=3)
    data.prepare_data()
    data.setup("fit")
    return module, next(iter(data.train_dataloader()))


@pytest.mark.parametrize("sharded", [False, True])
def test_the_helper_prepares_the_update_inputs(module_and_batch, monkeypatch, sharded: bool) -> None:
    module, batch = module_and_batch
    monkeypatch.setattr(async_rollouts, "is_sharded", lambda policy: sharded)
    ctx = module.rollout_context()
    ctx.engine = _SubmittingEngine(ctx.engine)
    assert ctx.vision_features  # tiny_module freezes the ViT; features are cached per batch
    queue = AsyncRollouts(module.runner, max_staleness=1)
    try:
        queue.submit(batch, ctx)
        queue.submit(batch, ctx)
        assert queue.ready()
        scored, stats = queue.pop(step=1)
    finally:
        _close(queue)
        module.runner.close()
    assert stats["async/staleness"] == 1.0 and len(scored.results) == 2 * len(batch.prompts)
    expected = encode_prompts(module.processor, list(batch.prompts), list(batch.images))
    assert scored.encoded.input_ids == expected.input_ids
    assert torch.equal(scored.encoded.pixel_values, expected.pixel_values)
    if sharded:
        assert scored.encoded.image_features is None  # the trainer computes them (rl/module.py `_update`)
    else:
        features = frozen_image_features(module.policy, expected, module.device)
        assert len(scored.encoded.image_features) == len(features) == len(batch.prompts)
        for got, want in zip(scored.encoded.image_features, features, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("max_staleness", [1, 2])
def test_each_batch_is_sampled_with_its_on_policy_seed(module_and_batch, max_staleness: int) -> None:
    module, batch = module_and_batch
    first_rl_step = 5  # e.g. after a warm-start of 5 steps
    ctx = replace(module.rollout_context(), step=first_rl_step)
    engine = ctx.engine = _SubmittingEngine(ctx.engine)
    # the on-policy loop samples batch i at global step first_rl_step + i (one update per step)
    on_policy = [module.runner._sampling(replace(ctx, step=first_rl_step + i), greedy=False).seed for i in range(5)]
    assert len(set(on_policy)) == 5
    queue = AsyncRollouts(module.runner, max_staleness=max_staleness)
    staleness = []
    try:
        for _ in range(5):  # the module's loop: submit this batch, train on the oldest once enough are in flight
            queue.submit(batch, ctx)
            if queue.ready():
                _, stats = queue.pop(ctx.step)
                staleness.append(stats["async/staleness"])
                ctx.step += 1  # the update
    finally:
        _close(queue)
        module.runner.close()
    assert engine.seeds == on_policy
    assert staleness == [float(min(i, max_staleness)) for i in range(5 - max_staleness)]


def test_submissions_at_one_step_are_seeded_apart_and_resume_so(module_and_batch) -> None:
    """Dynamic sampling's refill steps take no optimizer step, so several submissions see the same step: each
    is salted apart (as the on-policy loop salts its refills), a step that updates starts again at salt 0, and the
    checkpointed queue goes on with the same seeds as the queue that wrote it."""
    module, batch = module_and_batch
    ctx = replace(module.rollout_context(), step=3)
    engine = ctx.engine = _SubmittingEngine(ctx.engine)
    queue = AsyncRollouts(module.runner, max_staleness=1)
    resumed = AsyncRollouts(module.runner, max_staleness=1)
    try:
        queue.submit(batch, ctx)  # the run's first RL step only submits
        for updates in (False, False, True):  # two refill steps, then one that updates
            queue.submit(batch, ctx)
            queue.pop(ctx.step)
            ctx.step += int(updates)
        state = queue.state_dict()
        resumed.load_state_dict(state)
        queue.submit(batch, ctx)
        resumed.submit(batch, ctx)
    finally:
        _close(queue)
        _close(resumed)
        module.runner.close()

    def seed(step: int, salt: int) -> int:
        return module.runner._sampling(replace(ctx, step=step), greedy=False, salt=salt).seed

    assert state["last_seed"] == [4, 2]
    assert engine.seeds == [seed(3, 0), seed(4, 0), seed(4, 1), seed(4, 2), seed(5, 0), seed(5, 0)]
    assert len(set(engine.seeds[:5])) == 5
