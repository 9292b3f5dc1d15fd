"""rollout/base.py: what every engine shares."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lit_triune.rollout.base import policy_checkpoint_path


def test_policy_checkpoint_path_reads_the_config_or_names_the_engine():
    model = torch.nn.Linear(1, 1)
    model.config = SimpleNamespace(_name_or_path="/ckpt/qwen")
    assert policy_checkpoint_path(model, "VLLMEngine") == "/ckpt/qwen"
    model.config = SimpleNamespace(_name_or_path="")
    with pytest.raises(ValueError, match="RemoteEngine needs model_path"):
        policy_checkpoint_path(model, "RemoteEngine")
    with pytest.raises(ValueError, match="VLLMEngine needs model_path"):
        policy_checkpoint_path(torch.nn.Linear(1, 1), "VLLMEngine")
