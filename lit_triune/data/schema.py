"""The sample schema (Orsta-Data-47k field names) and its validation.

Every sample carries its own reward spec, so a bad spec is a bad sample: validation runs when a
shard is written (a clear error) and again when it is read (a counted skip at train time).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from lit_triune.boxes import BoxError, box_verifiers, is_normalized, parse_truth, verifier_parm

FALLBACK_VERIFIERS = frozenset({"mathverify", "detection", "grounding", "counting", "ocr"})
ROLES = frozenset({"system", "user", "assistant"})
IMAGE_PLACEHOLDER = "<image>"
LIST_TRUTH_VERIFIERS = frozenset({"ocr"})  # ground truth may be a list of acceptable strings (docs/rewards.md)
REWARD_KEYS = ("answer", "ground_truth", "accuracy_ratio", "format_ratio", "verifier", "verifier_parm")


class SampleError(ValueError):
    """An invalid sample, named by where it lives so a user can find and fix it."""

    def __init__(self, field: str, reason: str, *, shard: str | None = None, key: str | None = None) -> None:
        self.field, self.reason, self.shard, self.key = field, reason, shard, key
        where = f"shard {shard!r} key {key!r}: " if shard or key else ""
        super().__init__(f"{where}field {field!r}: {reason}")

    def located(self, shard: str | None, key: str | None) -> SampleError:
        return SampleError(self.field, self.reason, shard=shard, key=key)


@lru_cache(maxsize=1)
def _registry() -> tuple[Any, Any, Any] | None:
    """(available_verifiers, validate_reward_model, opt_in_hint) from `lit_triune.rewards`, or None
    before it lands."""
    try:
        from lit_triune.rewards import available_verifiers, validate_reward_model
        from lit_triune.rewards.registry import opt_in_hint
    except ImportError:
        return None
    return available_verifiers, validate_reward_model, opt_in_hint


def known_verifiers() -> frozenset[str]:
    """Verifier names the rewards registry knows; a local list until `lit_triune.rewards` lands."""
    reg = _registry()
    return FALLBACK_VERIFIERS if reg is None else frozenset(reg[0]())


def _registry_validate(reward_model: dict) -> None:
    reg = _registry()
    if reg is None:
        return
    validate_reward_model = reg[1]
    try:
        validate_reward_model(reward_model)
    except (ValueError, KeyError, TypeError) as err:
        raise SampleError("reward_model", f"rejected by the verifier registry: {err}") from err


def _require(d: dict, name: str, prefix: str = "") -> Any:
    if name not in d:
        raise SampleError(prefix + name, f"missing (present: {sorted(d)})")
    return d[name]


def _finite_ratio(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise SampleError(field, f"must be a finite number >= 0, got {value!r}")


def validate_sample(sample: Any, *, verifiers: frozenset[str] | None = None, check_images: bool = False) -> None:
    """Raise `SampleError` naming the first bad field; return None for a valid sample.

    `images` entries may be bytes, dicts with "bytes" (parquet style) or PIL images; with
    `check_images` each is decoded, which is what the prepare step does.
    """
    if not isinstance(sample, dict):
        raise SampleError("<sample>", f"must be a dict, got {type(sample).__name__}")
    source = _require(sample, "data_source")
    if not isinstance(source, str) or not source:
        raise SampleError("data_source", f"must be a non-empty string, got {source!r}")
    images = _require(sample, "images")
    if not isinstance(images, list):
        raise SampleError("images", f"must be a list, got {type(images).__name__}")
    prompt = _require(sample, "prompt")
    _validate_prompt(prompt, len(images))
    ability = _require(sample, "ability")
    if not isinstance(ability, str):
        raise SampleError("ability", f"must be a string, got {ability!r}")
    rm = _require(sample, "reward_model")
    _validate_reward_model(rm, verifiers if verifiers is not None else known_verifiers())
    info = _require(sample, "extra_info")
    if not isinstance(info, dict):
        raise SampleError("extra_info", f"must be a dict, got {type(info).__name__}")
    sid = _require(info, "id", "extra_info.")
    if not isinstance(sid, (str, int)) or isinstance(sid, bool) or str(sid) == "":
        raise SampleError("extra_info.id", f"must be a non-empty string or int, got {sid!r}")
    path = _require(info, "image_path", "extra_info.")
    if path is not None and not isinstance(path, (str, list)):
        raise SampleError("extra_info.image_path", f"must be a string, list or null, got {path!r}")
    if check_images:
        from lit_triune.data.images import ImageDecodeError, decode_image

        for i, img in enumerate(images):
            try:
                decode_image(img)
            except ImageDecodeError as err:
                raise SampleError(f"images[{i}]", str(err)) from err


def _validate_prompt(prompt: Any, n_images: int) -> None:
    if not isinstance(prompt, list) or not prompt:
        raise SampleError("prompt", f"must be a non-empty list of chat messages, got {prompt!r:.80}")
    placeholders = 0
    for i, msg in enumerate(prompt):
        if not isinstance(msg, dict) or set(msg) < {"role", "content"}:
            raise SampleError(f"prompt[{i}]", f"must be a dict with 'role' and 'content', got {msg!r:.80}")
        if msg["role"] not in ROLES:
            raise SampleError(f"prompt[{i}].role", f"must be one of {sorted(ROLES)}, got {msg['role']!r}")
        if not isinstance(msg["content"], str):
            raise SampleError(f"prompt[{i}].content", f"must be a string, got {type(msg['content']).__name__}")
        placeholders += msg["content"].count(IMAGE_PLACEHOLDER)
    if not any(m["role"] == "user" for m in prompt):
        raise SampleError("prompt", "has no user message")
    if placeholders != n_images:
        raise SampleError("prompt", f"has {placeholders} '{IMAGE_PLACEHOLDER}' placeholders for {n_images} images")


def _validate_reward_model(rm: Any, verifiers: frozenset[str]) -> None:
    if not isinstance(rm, dict):
        raise SampleError("reward_model", f"must be a dict, got {type(rm).__name__}")
    for k in REWARD_KEYS:
        _require(rm, k, "reward_model.")
    name = rm["verifier"]
    if name not in verifiers:
        reg = _registry()
        hint = reg[2](name) if reg is not None else ""  # how to opt in to the diagnostic debug_* verifiers
        raise SampleError("reward_model.verifier",
                          f"unknown verifier {name!r}; available: {sorted(verifiers)}{hint}")
    gt = rm["ground_truth"]
    if name in LIST_TRUTH_VERIFIERS and isinstance(gt, list):
        if not gt or not all(isinstance(g, str) and g.strip() for g in gt):
            raise SampleError(
                "reward_model.ground_truth", f"a list ground truth must hold non-empty strings, got {gt!r:.80}"
            )
    elif isinstance(gt, bool) or not isinstance(gt, (str, int)) or not str(gt).strip():
        allowed = "a non-empty string, an int" + (" or a list of strings" if name in LIST_TRUTH_VERIFIERS else "")
        raise SampleError("reward_model.ground_truth", f"must be {allowed}, got {gt!r:.80}")
    if rm["answer"] is not None and not isinstance(rm["answer"], str):
        raise SampleError("reward_model.answer", f"must be a string or null, got {rm['answer']!r:.80}")
    _finite_ratio(rm["accuracy_ratio"], "reward_model.accuracy_ratio")
    _finite_ratio(rm["format_ratio"], "reward_model.format_ratio")
    try:
        parm = verifier_parm(rm)
    except ValueError as err:
        raise SampleError("reward_model.verifier_parm", str(err)) from err
    if name in box_verifiers():
        try:
            parse_truth(rm["ground_truth"], normalized=is_normalized(parm))
        except BoxError as err:
            raise SampleError("reward_model.ground_truth", str(err)) from err
    _registry_validate({**rm, "verifier_parm": parm})  # the registry wants verifier_parm as a dict
