"""A warning when a config overlay replaces the base config's `trainer.callbacks` list.

`-c base.yaml -c overlay.yaml` merges mappings key by key, but a list is replaced whole: an overlay that
lists callbacks drops every callback of the base it does not repeat (in conf/tiny.yaml the IoU threshold
schedule, the samples logger, the gradient norms and checkpointing). This names what was dropped, so
the overlay can repeat them; an overlay that needs no callbacks of its own should not list any
(SourceMetrics takes its sources from the data module, so changing the data needs none).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

_CONFIG_FLAGS = ("-c", "--config")


def config_files(argv: Sequence[str]) -> list[str]:
    """The `-c` / `--config` files of a command line, in order."""
    files, args = [], list(argv)
    for i, arg in enumerate(args):
        if arg in _CONFIG_FLAGS and i + 1 < len(args):
            files.append(args[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def _callbacks(path: str) -> list[str] | None:
    """The class names of a config file's `trainer.callbacks` (None: the file does not set them)."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None  # the CLI reports unreadable files itself
    trainer = config.get("trainer") if isinstance(config, dict) else None
    if not isinstance(trainer, dict) or "callbacks" not in trainer:
        return None
    entries: Any = trainer["callbacks"] or []
    entries = entries if isinstance(entries, list) else [entries]
    return [str(e.get("class_path", e)).rsplit(".", 1)[-1] if isinstance(e, dict) else str(e) for e in entries]


def replaced_callbacks(argv: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """(overlay, base it replaced, callbacks dropped) for each config whose callback list replaces one."""
    found: list[tuple[str, str, list[str]]] = []
    current: tuple[str, list[str]] | None = None
    for path in config_files(argv):
        names = _callbacks(path)
        if names is None:
            continue
        if current is not None:
            dropped = [n for n in current[1] if n not in names]
            if dropped:
                found.append((path, current[0], dropped))
        current = (path, names)
    return found


def warn_replaced_callbacks(argv: Sequence[str]) -> None:
    for overlay, base, dropped in replaced_callbacks(argv):
        rank_zero_warn(
            f"{overlay} sets trainer.callbacks, which replaces the list of {base} (lists are not merged): "
            f"dropped {', '.join(dropped)}. Repeat the ones you want in {overlay}, or remove its "
            f"trainer.callbacks to keep the base's.", category=UserWarning)
