"""RolloutRunner: with an engine that generates each data source apart, every completion keeps its own
prompt's row and its own reward, whatever order the chunks come back in."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lit_triune.rl.rollout_step import RolloutContext, RolloutRunner, RolloutSettings
from lit_triune.rollout.base import Rollout
from lit_triune.rollout.chunked import ChunkedEngine


class EchoEngine(ChunkedEngine):
    """Completion g of a prompt is '<prompt>#g'; records the prompts of each backend call."""

    split_by_length_key = True

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def _generate_block(self, prompts, images, sampling, first_prompt, seed):
        self.calls.append(list(prompts))
        g = sampling.n
        texts = [f"{p}#{j}" for p in prompts for j in range(g)]
        return Rollout(
            prompt_index=torch.arange(first_prompt, first_prompt + len(prompts)).repeat_interleave(g),
            completion_ids=[[1] for _ in texts], sampling_logprobs=None, texts=texts,
            truncated=torch.zeros(len(texts), dtype=torch.bool),
            spurious_vision_tokens=torch.zeros(len(texts), dtype=torch.long),
        )


class EchoScorer:
    """Scores a completion by what it answers to: the reward spec's `truth` must be its prompt's."""

    def submit(self, texts, reward_models, sizes, iou_threshold):
        results = [{"reward": float(t.split("#")[0] == rm["truth"]), "text": t}
                   for t, rm in zip(texts, reward_models, strict=True)]
        return lambda: results

    def close(self) -> None:
        pass


def test_rows_and_rewards_stay_with_their_prompts_across_source_blocks():
    sources = ["det", "count", "det", "ocr", "count"]
    prompts = [f"p{i}" for i in range(len(sources))]
    engine = EchoEngine()
    runner = RolloutRunner(RolloutSettings(group_size=3, seed=0), scorer_factory=EchoScorer)
    batch = SimpleNamespace(prompts=prompts, images=[None] * 5, image_sizes=[(8, 8)] * 5,
                            reward_models=[{"truth": p} for p in prompts], data_sources=sources)
    scored = runner.rollout(batch, _context(engine, step=0))
    assert engine.calls == [["p0", "p2"], ["p1", "p4"], ["p3"]]  # one call per source, first-seen order
    assert scored.texts == [f"p{i}#{j}" for i in range(5) for j in range(3)]  # prompt-major, as without keys
    assert [r["text"] for r in scored.results] == scored.texts
    assert all(r["reward"] == 1.0 for r in scored.results)
    assert scored.data_sources == sources


class SamplingSpy(EchoEngine):
    """EchoEngine that records the sampling settings of each backend call."""

    def __init__(self) -> None:
        super().__init__()
        self.samplings = []

    def _generate_block(self, prompts, images, sampling, first_prompt, seed):
        self.samplings.append(sampling)
        return super()._generate_block(prompts, images, sampling, first_prompt, seed)


def _context(engine, step=7, iou_threshold=0.5) -> RolloutContext:
    return RolloutContext(engine=engine, policy=None, processor=None, device=torch.device("cpu"), step=step, rank=0,
                          iou_threshold=iou_threshold)


def _runner(**settings):
    return RolloutRunner(RolloutSettings(seed=0, **settings), scorer_factory=EchoScorer)


def _batch(n: int):
    prompts = [f"p{i}" for i in range(n)]
    return SimpleNamespace(prompts=prompts, images=[None] * n, image_sizes=[(8, 8)] * n,
                           reward_models=[{"truth": p} for p in prompts], data_sources=["s"] * n)


def test_sampled_validation_scores_val_samples_rows_per_prompt_at_the_validation_temperature():
    engine = SamplingSpy()
    runner = _runner(group_size=8, temperature=1.0, val_samples=3, val_temperature=0.6, val_max_new_tokens=9)
    records = runner.evaluate_sampled(_batch(2), _context(engine))
    assert records["data_source"] == ["s"] * 6  # k rows per prompt, every one scored
    assert [float(r) for r in records["reward"]] == [1.0] * 6
    (sampling,) = engine.samplings
    assert (sampling.n, sampling.temperature, sampling.max_new_tokens) == (3, 0.6, 9)
    runner.rollout(_batch(2), _context(engine))
    assert sampling.seed != engine.samplings[-1].seed  # not the training rollout's draw of this step
    runner.evaluate(_batch(2), _context(engine))
    assert engine.samplings[-1].n == 1 and engine.samplings[-1].temperature == 0.0  # greedy stays greedy


def test_sampled_validation_defaults_to_the_training_temperature_and_needs_val_samples():
    engine = SamplingSpy()
    runner = _runner(temperature=0.8, val_samples=2)
    runner.evaluate_sampled(_batch(1), _context(engine))
    assert engine.samplings[0].temperature == 0.8
    with pytest.raises(ValueError, match="val_samples"):
        _runner(val_samples=0).evaluate_sampled(_batch(1), _context(SamplingSpy()))


class ThresholdSpy(EchoScorer):
    """EchoScorer that records the IoU threshold each batch was scored at."""

    def __init__(self) -> None:
        self.thresholds: list[float] = []

    def submit(self, texts, reward_models, sizes, iou_threshold):
        self.thresholds.append(iou_threshold)
        return super().submit(texts, reward_models, sizes, iou_threshold)


@pytest.mark.parametrize("val_iou_threshold", [None, 0.5])
def test_validation_scores_boxes_at_val_iou_threshold_and_training_at_the_current_one(val_iou_threshold):
    """A fixed validation threshold holds the yardstick still while the dynamic schedule moves the training
    one (the context's iou_threshold, 0.99 here); None keeps scoring validation at the current threshold."""
    runner = _runner(val_samples=2, val_iou_threshold=val_iou_threshold)
    runner.scorer = spy = ThresholdSpy()
    context = _context(SamplingSpy(), iou_threshold=0.99)
    runner.evaluate(_batch(1), context)
    runner.evaluate_sampled(_batch(1), context)
    runner.rollout(_batch(1), context)
    expected = 0.99 if val_iou_threshold is None else val_iou_threshold
    assert spy.thresholds == [expected, expected, 0.99]
