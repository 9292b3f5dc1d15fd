"""Verifier registry: `reward_model["verifier"]` names the verifier that scores a sample.

New tasks add a verifier, not a branch in the training loop: decorate a class or function with
`@register_verifier("name")`, or expose it from another package under the entry-point group
`lit_triune.verifiers` (`[project.entry-points."lit_triune.verifiers"] myname = "pkg.mod:MyVerifier"`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from lit_triune.rewards.result import Context, Verdict

ENTRY_POINT_GROUP = "lit_triune.verifiers"


class Verifier:
    """Base class. Subclasses set `default_format` and implement `score` (and `check` to validate specs)."""

    name: str = ""
    default_format: str = (
        "tags"  # which format reward applies unless verifier_parm["format_reward"] says otherwise
    )

    def check(self, reward_model: Mapping[str, Any]) -> None:
        """Raise ValueError if the spec can never be scored (called at data-prepare time and per sample)."""

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        raise NotImplementedError


class _FunctionVerifier(Verifier):
    def __init__(self, name: str, fn: Callable[..., Verdict | float]) -> None:
        self.name, self._fn = name, fn

    def score(self, response: str, reward_model: Mapping[str, Any], ctx: Context) -> Verdict:
        out = self._fn(response, reward_model, ctx)
        return out if isinstance(out, Verdict) else Verdict(accuracy=float(out))


_REGISTRY: dict[str, Verifier] = {}
_entry_points_loaded = False


def _as_verifier(name: str, obj: Any) -> Verifier:
    if isinstance(obj, Verifier):
        verifier = obj
    elif isinstance(obj, type) and issubclass(obj, Verifier):
        verifier = obj()
    elif callable(obj):
        verifier = _FunctionVerifier(name, obj)
    else:
        raise TypeError(
            f"verifier {name!r} must be a Verifier subclass/instance or a callable, got {type(obj)!r}"
        )
    verifier.name = name
    return verifier


def register_verifier(name: str, *, replace: bool = False) -> Callable[[Any], Any]:
    """Decorator registering a `Verifier` subclass or a function `(response, reward_model, ctx) -> Verdict | float`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"verifier name must be a non-empty string, got {name!r}")

    def decorator(obj: Any) -> Any:
        if name in _REGISTRY and not replace:
            raise ValueError(f"verifier {name!r} is already registered; pass replace=True to override it")
        _REGISTRY[name] = _as_verifier(name, obj)
        return obj

    return decorator


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = _as_verifier(ep.name, ep.load())


def available_verifiers() -> list[str]:
    """Sorted names of every registered verifier (built-ins, decorated, entry points)."""
    _load_builtins()
    _load_entry_points()
    return sorted(_REGISTRY)


DIAGNOSTIC_MODULE = "lit_triune.rewards.verifiers.debug"
"""Registers `debug_sleep` / `debug_crash` when imported; they are not built in, so training data can't
name them. Opt in explicitly: `import lit_triune.rewards.verifiers.debug` in-process, or
`VerifierPool(imports=(DIAGNOSTIC_MODULE,))` for pool workers."""


def opt_in_hint(name: Any) -> str:
    """For an unknown `debug_*` name, how to opt in to the diagnostic verifiers; else ""."""
    if isinstance(name, str) and name.startswith("debug_"):
        return (f" (diagnostic verifiers are opt-in: import {DIAGNOSTIC_MODULE}, or pass "
                f"imports=({DIAGNOSTIC_MODULE!r},) to VerifierPool)")
    return ""


def get_verifier(name: str) -> Verifier:
    """The verifier registered under `name`; raises KeyError listing what is available."""
    _load_builtins()
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown verifier {name!r}; available verifiers: {', '.join(available_verifiers())}{opt_in_hint(name)}"
        )
    return _REGISTRY[name]


def reward_ratio(reward_model: Mapping[str, Any], key: str, default: float) -> float:
    """`accuracy_ratio` / `format_ratio`: a finite number >= 0 (None -> default); ValueError otherwise.

    A negative or infinite ratio would make the reward negative or unbounded (issue 17: `format_ratio: -3`
    scored -0.5), so it is a spec error at prepare time and a `spec` failure at score time.
    """
    value = reward_model.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"reward_model[{key!r}] must be a finite number >= 0 or None, got {value!r}")
    return float(value)


def validate_reward_model(reward_model: Any) -> None:
    """Check a sample's `reward_model` at prepare time; raises ValueError saying what is wrong."""
    if not isinstance(reward_model, Mapping):
        raise ValueError(f"reward_model must be a dict, got {type(reward_model).__name__}")
    name = reward_model.get("verifier")
    if not isinstance(name, str):
        raise ValueError(f"reward_model['verifier'] must be a string naming a verifier, got {name!r}")
    try:
        verifier = get_verifier(name)
    except KeyError as err:
        raise ValueError(str(err.args[0])) from None
    for key in ("accuracy_ratio", "format_ratio"):
        reward_ratio(reward_model, key, 0.0)
    parm = reward_model.get("verifier_parm")
    if parm is not None and not isinstance(parm, Mapping):
        raise ValueError(f"reward_model['verifier_parm'] must be a dict or None, got {type(parm).__name__}")
    verifier.check(reward_model)


def _load_builtins() -> None:
    import lit_triune.rewards.verifiers  # noqa: F401  (registers the built-in verifiers on import)
