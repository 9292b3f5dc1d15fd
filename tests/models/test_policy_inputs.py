"""`build_policy_inputs` takes the rows' 3-D positions from each prompt's (computed once per prompt): the same
positions the model's rule (`get_rope_index` on every full row) gives, padding included, and the rule itself
wherever that shortcut does not hold (a completion or a prompt ending with an image token, text-only prompts)."""

from __future__ import annotations

import copy

import pytest
import torch
from PIL import Image

from lit_triune.models import policy_inputs
from lit_triune.models.policy_inputs import build_policy_inputs, compute_position_ids, encode_prompts
from lit_triune.rl import policy as policy_lib


def _prompt(processor, text: str, image: bool = True) -> str:
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


@pytest.fixture(scope="module")
def setup(tiny_model_path, tiny_processor):
    model = policy_lib.load_policy(str(tiny_model_path))
    prompts = [_prompt(tiny_processor, "How many squares?"), _prompt(tiny_processor, "Colour of the big one?"),
               _prompt(tiny_processor, "Read it.")]
    images = [Image.new("RGB", (112, 112)), Image.new("RGB", (84, 140)), Image.new("RGB", (56, 196))]
    return model, tiny_processor, encode_prompts(tiny_processor, prompts, images)


def _rule(model, inputs, image_token_id):  # the model's rule on every full row
    return compute_position_ids(model, inputs.input_ids, inputs.attention_mask, inputs.image_grid_thw,
                                image_token_id)


def _completions(n: int, seed: int = 0) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(10, 900, (int(k),), generator=gen).tolist()
            for k in torch.randint(0, 12, (n,), generator=gen)]  # some empty


def test_positions_from_prompts_equal_the_rule_on_full_rows(setup, monkeypatch):
    model, processor, enc = setup
    image = model.config.image_token_id
    index = torch.tensor([2, 2, 0, 0, 0, 1, 2])  # unordered, uneven groups, a prompt used once
    completions = _completions(len(index))
    assert any(not c for c in completions) and len({len(r) for r in enc.input_ids}) == 3
    calls = []
    real = policy_inputs.compute_position_ids
    monkeypatch.setattr(policy_inputs, "compute_position_ids",
                        lambda m, ids, *a: calls.append(ids.shape[0]) or real(m, ids, *a))
    inputs = build_policy_inputs(model, enc, completions, index, processor.tokenizer.pad_token_id, image)
    assert calls == [3]  # the three prompts, not the seven rows
    assert torch.equal(inputs.position_ids, _rule(model, inputs, image))
    assert inputs.position_ids.dtype == torch.long
    monkeypatch.setattr(policy_inputs, "POSITIONS_PER_PROMPT", False)  # the benchmark's ablation switch
    again = build_policy_inputs(model, enc, completions, index, processor.tokenizer.pad_token_id, image)
    assert calls[1:] == [7] and torch.equal(again.position_ids, inputs.position_ids)


def test_the_shortcut_declines_where_it_does_not_hold(setup):
    """An image token in a completion or at a prompt's end would start an image group: the rule runs instead."""
    model, _, enc = setup
    image = model.config.image_token_id
    index = torch.tensor([0, 1])
    shortcut = policy_inputs._positions_from_prompts
    assert shortcut(model, enc, index, [[5, 6], [7]], 99, image) is not None
    assert shortcut(model, enc, index, [[5, 6, image], [7]], 99, image) is None
    ends_with_image = copy.copy(enc)
    ends_with_image.input_ids = [list(enc.input_ids[0][:-1]) + [image], enc.input_ids[1]]
    assert shortcut(model, ends_with_image, index, [[5], [7]], 99, image) is None


def test_text_only_prompts_keep_the_rule(tiny_model_path, tiny_processor):
    model = policy_lib.load_policy(str(tiny_model_path))
    enc = encode_prompts(tiny_processor, [_prompt(tiny_processor, "2+2?", image=False)], [None])
    inputs = build_policy_inputs(model, enc, [[5, 6, 7]], torch.tensor([0]), tiny_processor.tokenizer.pad_token_id,
                                 model.config.image_token_id)
    length = len(enc.input_ids[0]) + 3
    assert inputs.position_ids[:, 0].tolist() == [list(range(length))] * 3
