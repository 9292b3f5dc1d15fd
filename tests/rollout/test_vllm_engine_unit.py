"""VLLMEngine logic that needs no running engine: arguments, the import guard, binding, weight names,
sleep/wake bookkeeping (GPU-only in practice, so checked against a recording stand-in)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from lit_triune.rollout.vllm_engine import VLLMEngine, checkpoint_weights


class _RecordingEngineCore:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def reset_encoder_cache(self) -> None:
        self.calls.append("reset_encoder_cache")

    def reset_mm_cache(self) -> None:
        self.calls.append("reset_mm_cache")

    def reset_prefix_cache(self) -> None:
        self.calls.append("reset_prefix_cache")


class _RecordingLLM:
    """Stands in for `vllm.LLM`: records the calls the engine makes, in order."""

    def __init__(self) -> None:
        self.calls: list = []
        self.llm_engine = _RecordingEngineCore(self.calls)
        self.loaded: list[str] = []

    def collective_rpc(self, method: str, kwargs: dict) -> None:
        self.calls.append(method)
        self.loaded = [name for name, _ in kwargs["weights_iterator"]]

    def sleep(self, level: int) -> None:
        self.calls.append(f"sleep{level}")

    def wake_up(self, tags=None) -> None:
        self.calls.append(("wake_up", tags))


def _engine_with(llm: _RecordingLLM, **kwargs) -> VLLMEngine:
    engine = VLLMEngine("unused", **kwargs)
    engine._llm = llm
    return engine


def test_argument_errors_are_clear():
    with pytest.raises(ValueError, match="logprobs_mode must be one of"):
        VLLMEngine("m", logprobs_mode="raw_logits")
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        VLLMEngine("m", tensor_parallel_size=0)
    with pytest.raises(ValueError, match="sleep_level"):
        VLLMEngine("m", sleep_level=3)
    with pytest.raises(RuntimeError, match="model_path"):
        VLLMEngine().llm  # noqa: B018


def test_missing_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ImportError, match=r"pip install lit-triune\[vllm\]"):
        VLLMEngine("m").llm  # noqa: B018


def test_bind_takes_model_path_from_policy(hf_model, tiny_model_path, tiny_processor):
    engine = VLLMEngine()
    engine.bind(hf_model, tiny_processor)
    assert engine.model_path == str(tiny_model_path) and engine.processor is tiny_processor
    explicit = VLLMEngine("/elsewhere")
    explicit.bind(hf_model)
    assert explicit.model_path == "/elsewhere"


def test_cpu_engine_args_reserve_little_memory():
    args = VLLMEngine("m")._engine_args()
    if not torch.cuda.is_available():
        assert args["dtype"] == "float32" and args["enforce_eager"] is True
        assert args["kv_cache_memory_bytes"] == 256 << 20
        assert args["enable_chunked_prefill"] is False  # seeded requests cannot be prefilled in parts on CPU
        assert VLLMEngine("m", engine_kwargs={"enable_chunked_prefill": True})._engine_args()["enable_chunked_prefill"]
    assert args["logprobs_mode"] == "raw_logprobs" and args["limit_mm_per_prompt"] == {"image": 1}
    args = VLLMEngine("m", engine_kwargs={"distributed_executor_backend": "external_launcher"})._engine_args()
    assert args["distributed_executor_backend"] == "external_launcher"


def test_checkpoint_weight_names_drop_wrapper_prefixes(hf_model):
    names = [n for n, _ in checkpoint_weights(hf_model)]
    assert names == [n for n, _ in hf_model.named_parameters()]
    assert any(n.startswith("model.visual.") for n in names) and "lm_head.weight" in names

    class Wrapped(nn.Module):  # what DDP / torch.compile wrapping looks like
        def __init__(self) -> None:
            super().__init__()
            self.module = nn.Module()
            self.module._orig_mod = nn.Linear(2, 2)

    assert [n for n, _ in checkpoint_weights(Wrapped())] == ["weight", "bias"]


def test_tied_weights_go_out_under_every_name(conventions_model_path):
    """Qwen2.5-VL-3B ties lm_head to the embedding; vLLM's layer-by-layer reload keeps a stale head unless
    `lm_head.weight` arrives too (measured: sampled-vs-trainer log-prob gap 4.4 after 2 GRPO steps)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(conventions_model_path)
    weights = dict(checkpoint_weights(model))
    assert weights["lm_head.weight"].data_ptr() == weights["model.language_model.embed_tokens.weight"].data_ptr()
    assert len(weights) == len(list(model.named_parameters())) + 1


def test_sync_loads_weights_then_resets_every_cache(hf_model):
    llm = _RecordingLLM()
    engine = _engine_with(llm)
    engine.sync_weights(hf_model)
    assert llm.calls == ["reload_weights", "reset_encoder_cache", "reset_mm_cache", "reset_prefix_cache"]
    assert llm.loaded == [n for n, _ in hf_model.named_parameters()]


def test_sleep_and_wake_are_noops_without_sleep_mode(hf_model):
    llm = _RecordingLLM()
    engine = _engine_with(llm)
    engine.sleep()
    engine.wake_up()
    assert llm.calls == []


def test_sleep_mode_wakes_weights_for_sync_and_everything_for_generation(hf_model):
    llm = _RecordingLLM()
    engine = _engine_with(llm, enable_sleep_mode=True, sleep_level=2)
    engine.sleep()
    engine.sleep()  # idempotent
    engine.sync_weights(hf_model)  # weights must be resident to be loaded
    engine._wake_for_generation()
    engine._wake_for_generation()  # already awake
    assert llm.calls[0] == "sleep2" and llm.calls[1] == ("wake_up", ["weights"])
    assert llm.calls[2] == "reload_weights" and llm.calls[-1] == ("wake_up", None)
    assert llm.calls.count(("wake_up", None)) == 1


@pytest.mark.parametrize(
    "engine_class", ["lit_triune.rollout.HFGenerateEngine", "lit_triune.rollout.VLLMEngine"]
)
def test_engines_configurable_from_yaml_as_rollout_callback_engines(engine_class):
    """LightningCLI (jsonargparse) checks protocol signatures exactly; a mismatch rejects the config."""
    from jsonargparse import ArgumentParser

    from lit_triune.rollout.base import RolloutEngine
    from triune_callbacks.rollout_callback import GenerationEngine

    for protocol in (GenerationEngine, RolloutEngine):
        parser = ArgumentParser(exit_on_error=False)
        parser.add_argument("--engine", type=protocol)
        cfg = parser.parse_args(
            [f'--engine={{"class_path": "{engine_class}", "init_args": {{"chunk_size": 2}}}}']
        )
        engine = parser.instantiate_classes(cfg).engine
        assert type(engine).__name__ == engine_class.rsplit(".", 1)[1] and engine.chunk_size == 2
