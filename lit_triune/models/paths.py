"""What a `model_path` names, resolved to a checkpoint directory: a directory, a built-in preset
(`tiny`, `small`), or a Hugging Face Hub id (`Qwen/Qwen2.5-VL-3B-Instruct`) read from huggingface_hub's
cache (`HF_HUB_CACHE`, laid out as the Hub lays it out: `models--<org>--<name>/snapshots/<sha>/`).

A Hub id is looked up in the cache first. If it is not there it is downloaded only when the machine
is allowed to go online (`HF_HUB_OFFLINE` unset); offline, the error says how to fetch it.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class ModelPathError(FileNotFoundError):
    """A model_path that is no directory, no preset, and no Hub id found in the cache (offline)."""


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _looks_like_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_hub_id(repo_id: str) -> Path:
    """The local snapshot directory of a Hub model: from the cache, else downloaded when online."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if _hub_offline():
        raise ModelPathError(
            f"model_path {repo_id!r} is not a directory, so it was read as a Hugging Face Hub id, but it is not in "
            f"the Hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set. Fetch it once on a machine "
            f"with network (`hf download {repo_id}`, into the same HF_HUB_CACHE), or pass a checkpoint directory.")
    log.warning("model_path %r: not in the Hub cache %s; downloading it", repo_id, constants.HF_HUB_CACHE)
    return Path(snapshot_download(repo_id))


def resolve_model_path(name_or_path: str, cache_dir: str | Path | None = None) -> str:
    """A checkpoint directory for `name_or_path`: an existing directory as it is; a preset name (`tiny`,
    `small`) built once offline into `cache_dir`; otherwise a Hub id resolved through the Hub cache."""
    from lit_triune.models.tiny import build_tiny_model, preset_names

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if name_or_path in preset_names():
        return str(build_tiny_model(name_or_path, cache_dir))
    if not _looks_like_hub_id(name_or_path):
        raise ModelPathError(
            f"model_path {name_or_path!r} is not a directory, a preset {preset_names()} or a Hugging Face Hub "
            f"id (`org/name`); check the path")
    return str(resolve_hub_id(name_or_path))
