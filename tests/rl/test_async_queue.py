"""AsyncRollouts' helper thread: besides scoring each in-flight rollout, it prepares that rollout's update
inputs (the prompts through the processor and, with a frozen unsharded ViT, the image features), equal to what
the trainer computes itself; with a sharded policy the ViT (a collective) is left to the trainer's thread."""

from __future__ import annotations

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
    """An engine with `submit`, generating in this process (the HF engine) when the handle is waited on."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        self.engine = engine

    def submit(self, prompts, images, sampling):  # noqa: ANN001, ANN201
        def result():  # noqa: ANN202
            return self.engine.generate(prompts, images, sampling)

        return SimpleNamespace(wait=result, result=result, regenerated=False)


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
        queue.close()
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
