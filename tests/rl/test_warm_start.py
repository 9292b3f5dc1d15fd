"""The supervised warm-start's loss: micro-batches ordered by target length give the one-forward gradient."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from torch.testing import assert_close

from lit_triune.rl.logprobs import completion_logprobs
from lit_triune.rl.warm_start import target_inputs, warm_start_backward


@pytest.fixture(scope="module")
def model(tiny_model_path):
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    return AutoModelForImageTextToText.from_pretrained(tiny_model_path, dtype=torch.float32).train()


@pytest.fixture(scope="module")
def batch(tiny_processor):
    content = [{"type": "image"}, {"type": "text", "text": "Locate the red shape."}]
    prompt = tiny_processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                tokenize=False)
    targets = ["<think>a</think><answer>3</answer>",
               "<think>I find it.</think><answer>[60, 60, 108, 108]</answer>",
               "<think>b</think><answer>sun</answer>",
               "<think>I locate each shape.</think><answer>[{'bbox_2d': [1, 2, 30, 40], 'label': 'circle'}]</answer>",
               "<think>c</think><answer>12</answer>"]
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (90, 90, 90), (200, 200, 40)]
    return SimpleNamespace(prompts=[prompt] * len(targets), images=[Image.new("RGB", (112, 112), c) for c in colours],
                           sft_targets=targets)


def _grads(model):
    out = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("micro", [None, 2, 3])
def test_micro_batches_give_the_one_forward_loss_and_gradient(model, tiny_processor, batch, micro):
    model.zero_grad(set_to_none=True)
    inputs = target_inputs(model, tiny_processor, batch)  # the reference: one forward, mean NLL of target tokens
    mask = inputs.completion_mask.float()
    loss, tokens = -(completion_logprobs(model, inputs) * mask).sum() / mask.sum(), int(mask.sum())
    loss.backward()
    reference = _grads(model)
    forwards: list[torch.Tensor] = []

    def backward(part):
        forwards.append(part)
        part.backward()

    total, counted, finite = warm_start_backward(model, tiny_processor, batch, backward, micro)
    assert finite and counted == tokens > 20
    assert total == pytest.approx(float(loss), abs=1e-5)
    assert len(forwards) == (1 if micro is None else -(-5 // micro))
    got = _grads(model)
    assert got.keys() == reference.keys() and any("visual" in n for n in got)  # the ViT trains in the warm-start
    for name, g in reference.items():
        assert_close(got[name], g, atol=1e-6, rtol=1e-5, msg=name)


def test_micro_batches_are_ordered_by_target_length(model, tiny_processor, batch, monkeypatch):
    import lit_triune.rl.warm_start as ws

    lengths: list[int] = []
    real = ws.completion_logprobs

    def spy(m, sub, **kw):
        lengths.append(sub.completion_ids.shape[1])  # each micro-batch is padded to its own longest target
        return real(m, sub, **kw)

    monkeypatch.setattr(ws, "completion_logprobs", spy)
    warm_start_backward(model, tiny_processor, batch, lambda part: part.backward(), 2)
    model.zero_grad(set_to_none=True)
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1] / 3


def test_warm_start_learning_rate_decays_by_cosine_to_a_tenth():
    from lit_triune.rl.module import warm_start_lr_scale

    scales = [warm_start_lr_scale(s, 100) for s in range(0, 121, 10)]
    assert scales[0] == 1.0 and scales[5] == pytest.approx(0.55) and scales[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(scales, scales[1:], strict=False)) and scales[-1] == pytest.approx(0.1)
