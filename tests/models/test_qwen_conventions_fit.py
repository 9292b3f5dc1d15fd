"""`fit -c conf/tiny.yaml --model.model_path tiny-qwen-conventions`: the CPU default's config, unchanged but
for the model, trains on the real-convention checkpoint with the HF and with the vLLM engine.

Checked on the trained policy, with the engine the run used: every completion that is not truncated ends
at its first stop token (<|im_end|> or <|endoftext|>, the real generation config's eos pair), a
truncated one is max_new_tokens long with no stop in it, no control or vision token reaches the text,
the logged rewards are the verifiers' on those texts, and the engine samples from the policy itself:
its log-probs equal the trainer's recompute (the checkpoint's repetition_penalty 1.05 and temperature
1e-6 must not leak into RL sampling).

The in-process vLLM engine leaves a one-rank process group behind, so this file sorts after
test_memory_plan.py, whose fake process groups need none to exist (it failed after this file as
test_conventions_fit.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lit_triune.main import cli_main
from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
from lit_triune.models.tiny import CONVENTIONS_PRESET
from lit_triune.rewards.scoring import score
from lit_triune.rl.logprobs import completion_logprobs
from lit_triune.rollout.base import SamplingConfig
from lit_triune.rollout.vision_tokens import stop_token_ids, vision_token_ids

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[2]
MAX_NEW = 24
WARM = 20  # warm-start steps before the 2 GRPO steps
VLLM_ENGINE = {"class_path": "triune_callbacks.RolloutCallback",
               "init_args": {"engine": {"class_path": "lit_triune.rollout.VLLMEngine",
                                        "init_args": {"max_model_len": 512, "max_num_seqs": 32,
                                                      "kv_cache_memory_bytes": 64 << 20}}}}  # fmt: skip


class _Probe(Callback):
    """Keeps the training rollouts' records, and at the end samples with the run's engine."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.final: dict = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if isinstance(outputs, dict) and outputs.get("rollout") is not None:
            self.records.append({k: outputs["rollout"][k] for k in ("response", "format", "accuracy", "reward",
                                                                    "truncated", "response_length")})
            self.records[-1]["specs"] = list(batch.reward_models)
            self.records[-1]["sizes"] = [tuple(s) for s in batch.image_sizes]
            self.records[-1]["group_size"] = module.hparams.group_size

    def on_train_end(self, trainer, module) -> None:  # noqa: ANN001
        batch = next(iter(trainer.datamodule.val_dataloader()))
        prompts, images = list(batch.prompts), list(batch.images)
        r = module.rollout_engine.generate(prompts, images, SamplingConfig(n=4, max_new_tokens=MAX_NEW, seed=5))
        was_training = module.policy.training
        module.policy.eval()
        enc = encode_prompts(module.processor, prompts, images)
        inputs = build_policy_inputs(module.policy, enc, r.completion_ids, r.prompt_index,
                                     module.processor.tokenizer.pad_token_id, module.policy.config.image_token_id)
        with torch.no_grad():
            trained = completion_logprobs(module.policy, inputs)  # [N, T]
        module.policy.train(was_training)
        gap = 0.0
        for i, lps in enumerate(r.sampling_logprobs):
            gap = max(gap, (torch.tensor(lps) - trained[i, : len(lps)]).abs().max().item())
        self.final = {"rollout": r, "gap": gap, "tokenizer": module.processor.tokenizer,
                      "engine": type(module.rollout_engine).__name__}


def _fit(tmp_path: Path, extra: list[str]) -> tuple[object, _Probe]:
    cli = cli_main(
        ["-c", str(REPO / "conf" / "tiny.yaml"), f"--model.model_path={CONVENTIONS_PRESET}",
         f"--trainer.max_steps={WARM + 2}", f"--model.warm_start_steps={WARM}", "--model.reward_workers=0",
         f"--model.max_new_tokens={MAX_NEW}", "--model.group_size=4", "--model.stage_reports=false",
         "--trainer.log_every_n_steps=1", f"--trainer.default_root_dir={tmp_path}",
         f"--trainer.logger.init_args.save_dir={tmp_path}",
         # counting only: 20 warm-start steps teach this model the tags (measured: format ~0.5 after them)
         '--data.synthetic={"counting": 32}', "--data.weights={}", '--data.val_synthetic={"counting": 2}',
         "--data.batch_size=4", "--data.num_workers=0",
         f"--data.cache_dir={tmp_path / 'data'}", *extra],
        run=False,
    )  # fmt: skip
    probe = _Probe()
    cli.trainer.callbacks.append(probe)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == WARM + 2
    return cli, probe


def _check(cli, probe: _Probe) -> None:
    tok = probe.final["tokenizer"]
    assert type(tok).__name__ == "Qwen2Tokenizer" and len(tok.encode("<answer>", add_special_tokens=False)) > 1
    stops, vision = set(stop_token_ids(tok)), set(vision_token_ids(tok))
    r = probe.final["rollout"]
    for ids, text, truncated in zip(r.completion_ids, r.texts, r.truncated.tolist(), strict=True):
        first_stop = next((i for i, t in enumerate(ids) if t in stops), None)
        if truncated:
            assert first_stop is None and len(ids) == MAX_NEW
        else:
            assert first_stop == len(ids) - 1  # cut right after the first stop token
        assert not set(ids) & vision
        assert "<|im_end|>" not in text and "<|endoftext|>" not in text and "<|image_pad|>" not in text
    print(f"\n{probe.final['engine']}: sampled vs trained log-prob gap {probe.final['gap']:.2e}; "
          f"{len(probe.records)} GRPO rollouts, e.g. {r.texts[0][:60]!r}")
    assert probe.final["gap"] <= 1e-3  # no repetition penalty / temperature from generation_config.json
    assert len(probe.records) == 2  # the 2 GRPO steps
    tagged = 0
    for rec in probe.records:  # what was logged is what the verifiers give for those texts
        g = rec["group_size"]
        for i, text in enumerate(rec["response"]):
            want = score(text, rec["specs"][i // g], image_size=rec["sizes"][i // g])
            assert rec["format"][i].item() == pytest.approx(want["format"]), text
            assert rec["accuracy"][i].item() == pytest.approx(want["accuracy"]), text
            assert not rec["truncated"][i] or int(rec["response_length"][i]) == MAX_NEW
            tagged += "</answer>" in text
    fmt = torch.cat([rec["format"] for rec in probe.records])
    print(f"GRPO completions with a closed <answer> block: {tagged} of {len(fmt)}; mean format {fmt.mean():.3f}")
    assert tagged > 0 and fmt.mean() > 0.1  # the warm-started policy writes the split tags, and they are read


def test_fit_with_the_hf_engine(tmp_path: Path) -> None:
    cli, probe = _fit(tmp_path, [])
    assert probe.final["engine"] == "HFGenerateEngine"
    _check(cli, probe)


@pytest.mark.vllm
def test_fit_with_the_vllm_engine(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    cli, probe = _fit(tmp_path, [f"--trainer.callbacks+={json.dumps(VLLM_ENGINE)}"])
    assert probe.final["engine"] == "VLLMEngine"
    _check(cli, probe)
