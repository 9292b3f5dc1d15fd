"""model_path as a directory, a preset or a Hub id read from a local cache laid out as the Hub lays it out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lit_triune.models.paths import ModelPathError, resolve_model_path
from lit_triune.models.tiny import build_tiny_model

SHA = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(root: Path, repo_id: str, model_dir: Path) -> Path:
    """`models--<org>--<name>/snapshots/<sha>/` holding the checkpoint, and `refs/main` naming the sha."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_dir, repo / "snapshots" / SHA)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    return repo / "snapshots" / SHA


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_hub_id_resolves_to_the_cached_snapshot(offline_cache: Path) -> None:
    snapshot = fake_hub_cache(offline_cache, "someorg/tiny-vl", build_tiny_model("tiny"))
    assert Path(resolve_model_path("someorg/tiny-vl")) == snapshot


def test_hub_id_not_cached_offline_says_what_to_do(offline_cache: Path) -> None:
    with pytest.raises(ModelPathError, match=r"not in the Hub cache .*HF_HUB_OFFLINE.*hf download Qwen/Qwen2.5-VL-3B"):
        resolve_model_path("Qwen/Qwen2.5-VL-3B-Instruct")


def test_directory_and_preset_unchanged(tmp_path: Path) -> None:
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
    assert Path(resolve_model_path("tiny")) == build_tiny_model("tiny")


def test_missing_path_that_is_no_hub_id(offline_cache: Path) -> None:
    with pytest.raises(ModelPathError, match="not a directory, a preset"):
        resolve_model_path("/ckpt/does/not/exist")


def test_datamodule_and_policy_accept_a_hub_id(offline_cache: Path) -> None:
    from lit_triune.data.datamodule import _resolve_model_path
    from lit_triune.rl import policy

    snapshot = fake_hub_cache(offline_cache, "someorg/tiny-vl", build_tiny_model("tiny"))
    assert Path(_resolve_model_path("someorg/tiny-vl")) == snapshot
    assert Path(policy.resolve_model_path("someorg/tiny-vl")) == snapshot
    assert policy.load_processor(str(snapshot)) is not None


def test_memory_plan_reads_a_cached_hub_config(offline_cache: Path) -> None:
    from lit_triune.models import memory_plan

    snapshot = fake_hub_cache(offline_cache, "someorg/tiny-vl", build_tiny_model("tiny"))
    config, source = memory_plan.load_config("someorg/tiny-vl")
    assert Path(source) == snapshot / "config.json"
