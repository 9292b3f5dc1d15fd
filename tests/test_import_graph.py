"""The package's import graph, read from the source with `ast` (nothing is imported):

- `lit_triune.rollout` does not import `lit_triune.rl` (both build on the adapters in `lit_triune.models`);
- `lit_triune.rl` uses `lit_triune.rollout` only through its public interface: the package itself and its
  `base`, `chunked`, `hf_engine` and `vllm_engine` modules, and no `_private` name of theirs;
- nothing in `lit_triune` imports the callbacks (`triune_callbacks`, which must stay usable without
  lit_triune, and lit_triune without them).

Imports inside functions count too, and so do `importlib.import_module("...")` / `__import__("...")` calls
with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lit_triune"
ROLLOUT_PUBLIC = {"lit_triune.rollout", *(f"lit_triune.rollout.{m}" for m in ("base", "chunked", "hf_engine",
                                                                             "vllm_engine"))}
CALLBACK_PACKAGES = ("triune_callbacks", "callbacks")


@dataclass(frozen=True)
class Use:
    """One imported module (`name` None) or one name imported from / read off a module, at `line`."""

    module: str
    name: str | None
    line: int

    def __str__(self) -> str:
        return f"line {self.line}: {self.module}" + (f".{self.name}" if self.name else "")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(importer: str, is_package: bool, level: int, module: str | None) -> str:
    if not level:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(source: str, importer: str, is_package: bool = False) -> list[Use]:
    """Every module `importer` imports and every name it takes from one (or reads off an alias of one)."""
    tree = ast.parse(source)
    uses: list[Use] = []
    aliases: dict[str, str] = {}  # `import a.b as m` / `from a import b as m`: m -> "a.b"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                uses.append(Use(alias.name, None, node.lineno))
                if alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(importer, is_package, node.level, node.module)
            uses.append(Use(module, None, node.lineno))
            for alias in node.names:
                uses.append(Use(module, alias.name, node.lineno))
                aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            uses.append(Use(node.args[0].value, None, node.lineno))
    for node in ast.walk(tree):  # `m._private` where m names an imported module
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            uses.append(Use(aliases[node.value.id], node.attr, node.lineno))
    return uses


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(importer: str, uses: list[Use]) -> list[str]:
    """What `importer` may not import, each as "<importer> line <n>: <what>: <rule>"."""
    found = []
    for use in uses:
        full = f"{use.module}.{use.name}" if use.name else use.module  # `from lit_triune import rl`: lit_triune.rl
        if _within(importer, "lit_triune.rollout") and (_within(use.module, "lit_triune.rl")
                                                         or _within(full, "lit_triune.rl")):
            found.append(f"{importer} {use}: rollout imports rl (shared code belongs in lit_triune.models)")
        if _within(importer, "lit_triune.rl") and _within(full, "lit_triune.rollout"):
            if full in MODULES and full not in ROLLOUT_PUBLIC or (
                    use.name is None and use.module not in ROLLOUT_PUBLIC):
                found.append(f"{importer} {use}: rl imports a rollout module outside its public interface "
                             f"({', '.join(sorted(ROLLOUT_PUBLIC))})")
            elif use.name is not None and use.name.startswith("_"):
                found.append(f"{importer} {use}: rl uses a private rollout name")
            elif _within(use.module, "lit_triune.rollout") and use.module not in ROLLOUT_PUBLIC and (
                    use.module in MODULES):
                found.append(f"{importer} {use}: rl imports from a rollout module outside its public interface "
                             f"({', '.join(sorted(ROLLOUT_PUBLIC))})")
        if any(_within(use.module, p) or _within(full, p) for p in (*CALLBACK_PACKAGES, "lit_triune.callbacks")):
            found.append(f"{importer} {use}: lit_triune imports the callbacks package (triune_callbacks "
                         "must not be a dependency of lit_triune code)")
    return found


def _package_modules() -> list[tuple[str, Path]]:
    return sorted((module_name(p), p) for p in PACKAGE.rglob("*.py"))


MODULES = {name for name, _ in _package_modules()}


def test_the_package_has_the_modules_the_rules_are_about():
    assert {"lit_triune.rollout.hf_engine", "lit_triune.rl.module", "lit_triune.models.sharding"} <= MODULES
    assert ROLLOUT_PUBLIC <= MODULES


@pytest.mark.parametrize("name,path", _package_modules(), ids=lambda x: x if isinstance(x, str) else "")
def test_import_graph(name: str, path: Path):
    found = violations(name, imports_of(path.read_text(), name, path.name == "__init__.py"))
    assert not found, f"{path.relative_to(PACKAGE.parent)}:\n  " + "\n  ".join(found)


@pytest.mark.parametrize("importer,source,expected", [
    ("lit_triune.rollout.hf_engine", "from lit_triune.rl.logprobs import cache_rows", "rollout imports rl"),
    ("lit_triune.rollout.hf_engine", "def f():\n    import lit_triune.rl.sharding", "rollout imports rl"),
    ("lit_triune.rollout.hf_engine", "from lit_triune import rl", "rollout imports rl"),
    ("lit_triune.rollout.hf_engine", "from ..rl import policy_inputs", "rollout imports rl"),
    ("lit_triune.rl.module", "from lit_triune.rollout.vision_tokens import VISION_TOKENS",
     "outside its public interface"),
    ("lit_triune.rl.module", "from lit_triune.rollout import vision_tokens", "outside its public interface"),
    ("lit_triune.rl.module", "from lit_triune.rollout.hf_engine import _shared_prefill", "private rollout name"),
    ("lit_triune.rl.module", "import lit_triune.rollout.hf_engine as h\nh._eval_mode", "private rollout name"),
    ("lit_triune.rl.module", "from triune_callbacks._fsdp import full_parameters", "imports the callbacks"),
    ("lit_triune.rl.stage_report", "import importlib\nimportlib.import_module('triune_callbacks')",
     "imports the callbacks"),
])
def test_the_checker_catches(importer: str, source: str, expected: str):
    """The rules above would see each kind of violation (so an empty result means something)."""
    found = violations(importer, imports_of(source, importer))
    assert found and all(importer in f for f in found) and any(expected in f for f in found), found


@pytest.mark.parametrize("importer,source", [
    ("lit_triune.rl.rollout_step", "from lit_triune.rollout.base import Rollout, SamplingConfig"),
    ("lit_triune.rl.rollout_step", "from lit_triune.rollout.hf_engine import HFGenerateEngine"),
    ("lit_triune.rl.module", "from lit_triune.rollout import VLLMEngine"),
    ("lit_triune.rollout.hf_engine", "from lit_triune.models.kv_cache import cache_rows"),
    ("lit_triune.rollout.hf_engine", "from lit_triune.rollout.base import Rollout"),
])
def test_the_checker_allows(importer: str, source: str):
    assert violations(importer, imports_of(source, importer)) == []
