"""Shared fixtures: the tiny Qwen2.5-VL every test uses, built once per machine (offline, deterministic)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

# Helper modules and subprocess scripts the tests share (fit drivers, probes, test verifiers) live in
# tests/support/, not among the tests; subprocess fits put the same folder on their PYTHONPATH (rl_cli.py).
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # vLLM engine in-process on CPU
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    from lit_triune.models.tiny import build_tiny_model

    return build_tiny_model("tiny")


@pytest.fixture(scope="session")
def tiny_processor(tiny_model_path: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_path)


@pytest.fixture(scope="session")
def conventions_model_path() -> Path:
    """`tiny-qwen-conventions`: Qwen2.5-VL's real tokenizer/template/processor conventions at test size."""
    from lit_triune.models.qwen_conventions import build_conventions_model

    return build_conventions_model()


@pytest.fixture(scope="session")
def conventions_processor(conventions_model_path: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(conventions_model_path)


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for this interpreter, so a notebook runs in this venv whatever else is installed."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "lit-triune-test"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "lit-triune test", "language": "python"}  # fmt: skip
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return "lit-triune-test"
