"""Loading a policy by path and freezing its parts (vision tower, language model, or nothing)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lit_triune.models.paths import resolve_model_path  # noqa: F401  (re-exported: directory, preset or Hub id)

FREEZE_CHOICES = ("vision", "language", "none")


def load_policy(path: str, dtype: torch.dtype = torch.float32, attn_implementation: str | None = None) -> nn.Module:
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return AutoModelForImageTextToText.from_pretrained(path, **kwargs)


def load_processor(path: str) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(path)


def vision_tower(model: nn.Module) -> nn.Module:
    """Qwen2.5-VL keeps the ViT and its patch merger at `model.model.visual`."""
    inner = getattr(model, "model", model)
    if not hasattr(inner, "visual"):
        raise ValueError(f"{type(model).__name__} has no `visual` tower; freeze='vision' needs a Qwen-VL-style model")
    return inner.visual


def language_model(model: nn.Module) -> list[nn.Module]:
    inner = getattr(model, "model", model)
    parts = [inner.language_model] if hasattr(inner, "language_model") else []
    if hasattr(model, "lm_head"):
        parts.append(model.lm_head)
    if not parts:
        raise ValueError(f"{type(model).__name__} has no `language_model`; cannot freeze it")
    return parts


def frozen_modules(model: nn.Module, freeze: str) -> list[nn.Module]:
    if freeze not in FREEZE_CHOICES:
        raise ValueError(f"freeze must be one of {FREEZE_CHOICES}, got {freeze!r}")
    if freeze == "vision":
        return [vision_tower(model)]
    if freeze == "language":
        return language_model(model)
    return []


def apply_freeze(model: nn.Module, freeze: str) -> list[nn.Module]:
    """Frozen parts get requires_grad=False and eval mode; returns them so callers can keep them in eval
    (Lightning's `train()` at each epoch start would otherwise flip them back)."""
    parts = frozen_modules(model, freeze)
    for p in model.parameters():
        p.requires_grad_(True)
    for part in parts:
        part.requires_grad_(False)
        part.eval()
    return parts


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
