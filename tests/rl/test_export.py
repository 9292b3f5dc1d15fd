"""After a few steps (warm-start + GRPO): `export_pretrained` writes a checkpoint transformers and vLLM
load with the trained weights, and a Lightning checkpoint holds the IoU threshold and the data position."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from rl_fit import fit, tiny_data, tiny_module

from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
from triune_callbacks import DynamicIoUThreshold

MAX_STEPS = 3  # 1 warm-start step (the whole model moves) + 2 GRPO steps


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    module = tiny_module(warm_start_steps=1, group_size=2)
    data = tiny_data(root / "data")
    trainer = fit(module, data, root, max_steps=MAX_STEPS, callbacks=[DynamicIoUThreshold()])
    trainer.save_checkpoint(root / "last.ckpt")
    module.export_pretrained(str(root / "hf"))
    return module, trainer, root


def _prompt(processor) -> tuple[list[str], list[Image.Image]]:
    content = [{"type": "image"}, {"type": "text", "text": "How many squares are in the image?"}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)
    return [text], [Image.new("RGB", (112, 112), (220, 30, 30))]


def _hf_prompt_logprobs(model, processor, prompts, images) -> torch.Tensor:  # [L-1]
    enc = encode_prompts(processor, prompts, images)
    inputs = build_policy_inputs(model, enc, [[]], torch.tensor([0]), processor.tokenizer.pad_token_id,
                                 model.config.image_token_id)
    with torch.no_grad():
        hidden = model.model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                             position_ids=inputs.position_ids, pixel_values=inputs.pixel_values,
                             image_grid_thw=inputs.image_grid_thw).last_hidden_state
        logps = torch.log_softmax(model.lm_head(hidden).float(), -1)[0]
    ids = inputs.input_ids[0]
    return logps[:-1].gather(-1, ids[1:, None]).squeeze(-1)


def test_export_loads_in_transformers_with_the_trained_weights(trained, tiny_model_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    module, trainer, root = trained
    assert trainer.global_step == MAX_STEPS
    out = root / "hf"
    loaded = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(out)
    trained_sd, loaded_sd = module.policy.state_dict(), loaded.state_dict()
    assert trained_sd.keys() == loaded_sd.keys()
    for name, tensor in trained_sd.items():
        assert torch.equal(loaded_sd[name], tensor), name
    init = AutoModelForImageTextToText.from_pretrained(tiny_model_path, dtype=torch.float32).state_dict()
    moved = [n for n in init if not torch.equal(init[n], trained_sd[n])]
    assert len(moved) > len(init) // 2  # the export is the trained policy, not the initial one
    # The processor renders the same prompt ids (chat template, image tokens) as the training one.
    prompts, images = _prompt(processor)
    assert encode_prompts(processor, prompts, images).input_ids == encode_prompts(module.processor, prompts,
                                                                                   images).input_ids
    assert processor.tokenizer.convert_tokens_to_ids("<answer>") == module.processor.tokenizer.convert_tokens_to_ids(
        "<answer>")


@pytest.mark.slow
@pytest.mark.vllm
def test_export_loads_in_vllm_and_generates_from_an_image_prompt(trained):
    pytest.importorskip("vllm")
    from lit_triune.rollout.base import SamplingConfig
    from lit_triune.rollout.vllm_engine import VLLMEngine

    module, _, root = trained
    prompts, images = _prompt(module.processor)
    engine = VLLMEngine(model_path=root / "hf", max_model_len=512, max_num_seqs=8, kv_cache_memory_bytes=64 << 20)
    try:
        r = engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=8, seed=0))
        assert r.prompt_index.tolist() == [0, 0] and len(r.texts) == 2
        assert all(1 <= len(ids) <= 8 for ids in r.completion_ids)
        # vLLM computes the exported (trained) model, not some other copy of the weights.
        ((ids, lps),) = engine.prompt_logprobs(prompts, images)
        assert ids == encode_prompts(module.processor, prompts, images).input_ids[0]
        expected = _hf_prompt_logprobs(module.policy.eval(), module.processor, prompts, images)
        assert (torch.tensor(lps) - expected).abs().max() <= 1e-4
    finally:
        engine.close()


def test_checkpoint_holds_iou_threshold_and_data_position(trained, tmp_path):
    module, trainer, root = trained
    ckpt = torch.load(root / "last.ckpt", weights_only=False)
    # DynamicIoUThreshold: 0.85 -> 0.95 -> 0.99 at 10 % / 25 % of 3 steps: past both at the end.
    assert module.iou_threshold == 0.99
    assert ckpt["lit_triune"]["iou_threshold"] == 0.99
    # The data position: one rank's stream cursors after the 3 consumed batches.
    data_state = ckpt["TriuneDataModule"]
    assert data_state["seed"] == trainer.datamodule.seed and len(data_state["per_rank"]) == 1
    assert data_state["per_rank"][0]["cursors"], data_state
    # A fresh module and DataModule restore both: the data continues with the 4th batch.
    fresh = tiny_module(warm_start_steps=1, group_size=2)
    fresh.on_load_checkpoint(ckpt)
    assert fresh.iou_threshold == 0.99
    seen = []
    full = tiny_data(root / "data")
    full.setup("fit")
    for i, batch in enumerate(full.train_dataloader()):
        seen.append(list(batch.ids))
        if i == MAX_STEPS:
            break
    resumed = tiny_data(root / "data")
    resumed.setup("fit")
    resumed.load_state_dict(data_state)
    assert list(next(iter(resumed.train_dataloader())).ids) == seen[MAX_STEPS]
