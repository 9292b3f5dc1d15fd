"""The rollout server's messages: a JSON header and raw byte blobs over a `multiprocessing.connection`.

Only `send_bytes`/`recv_bytes` are used, never `send`/`recv` (which pickle): the server's replies carry
model-generated text and token ids, and unpickling them would run whatever a crafted reply asks for. A
message is one JSON object (plain dicts, lists, strings, numbers) followed by `nblobs` byte strings
(image pixels); images travel as mode + size + raw bytes, restricted to a few PIL modes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import torch

from lit_triune.rollout.base import Rollout, SamplingConfig

MAX_HEADER_BYTES = 256 << 20  # a batch's completions and log-probs as JSON
MAX_BLOB_BYTES = 512 << 20  # one image's pixels
IMAGE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P", "I;16", "F", "I"})


class WireError(ValueError):
    """A message that does not follow the protocol (wrong type, unknown image mode, too large)."""


def send(conn: Any, header: dict[str, Any], blobs: list[bytes] | None = None) -> None:
    blobs = blobs or []
    conn.send_bytes(json.dumps({**header, "nblobs": len(blobs)}).encode())
    for blob in blobs:
        conn.send_bytes(blob)


def recv(conn: Any) -> tuple[dict[str, Any], list[bytes]]:
    header = json.loads(conn.recv_bytes(MAX_HEADER_BYTES).decode())
    if not isinstance(header, dict):
        raise WireError(f"expected a JSON object, got {type(header).__name__}")
    n = int(header.pop("nblobs", 0))
    return header, [conn.recv_bytes(MAX_BLOB_BYTES) for _ in range(n)]


def encode_images(images: list[Any]) -> tuple[list[dict[str, Any] | None], list[bytes]]:
    """PIL images (or None) -> JSON descriptions + blobs."""
    described, blobs = [], []
    for image in images:
        if image is None:
            described.append(None)
            continue
        if image.mode not in IMAGE_MODES:
            image = image.convert("RGB")
        described.append({"mode": image.mode, "size": list(image.size), "blob": len(blobs)})
        blobs.append(image.tobytes())
    return described, blobs


def decode_images(described: list[Any], blobs: list[bytes]) -> list[Any]:
    from PIL import Image

    images = []
    for d in described:
        if d is None:
            images.append(None)
            continue
        if d["mode"] not in IMAGE_MODES:
            raise WireError(f"image mode {d['mode']!r} is not one of {sorted(IMAGE_MODES)}")
        w, h = (int(v) for v in d["size"])
        images.append(Image.frombytes(d["mode"], (w, h), blobs[int(d["blob"])]))
    return images


def sampling_to_dict(sampling: SamplingConfig) -> dict[str, Any]:
    return asdict(sampling)


def sampling_from_dict(d: dict[str, Any]) -> SamplingConfig:
    fields = SamplingConfig.__dataclass_fields__
    return SamplingConfig(**{k: v for k, v in d.items() if k in fields})


def rollout_to_dict(r: Rollout) -> dict[str, Any]:
    return {
        "prompt_index": r.prompt_index.tolist(),
        "completion_ids": [list(map(int, ids)) for ids in r.completion_ids],
        "sampling_logprobs": None if r.sampling_logprobs is None else [list(map(float, x)) for x in r.sampling_logprobs],
        "texts": list(r.texts),
        "truncated": r.truncated.bool().tolist(),
        "spurious_vision_tokens": r.spurious_vision_tokens.long().tolist(),
        "timings": {str(k): float(v) for k, v in r.timings.items()},
    }


def rollout_from_dict(d: dict[str, Any]) -> Rollout:
    """Checks the types of what the server sent (it is model output: nothing here is evaluated)."""
    ids = [[int(t) for t in row] for row in d["completion_ids"]]
    texts = [str(t) for t in d["texts"]]
    lps = d.get("sampling_logprobs")
    n = len(ids)
    if len(texts) != n or len(d["truncated"]) != n or len(d["prompt_index"]) != n:
        raise WireError(f"rollout rows disagree: {n} completions, {len(texts)} texts")
    return Rollout(
        prompt_index=torch.tensor([int(i) for i in d["prompt_index"]], dtype=torch.long),  # [N]
        completion_ids=ids,
        sampling_logprobs=None if lps is None else [[float(x) for x in row] for row in lps],
        texts=texts,
        truncated=torch.tensor([bool(x) for x in d["truncated"]], dtype=torch.bool),  # [N]
        spurious_vision_tokens=torch.tensor([int(x) for x in d["spurious_vision_tokens"]], dtype=torch.long),  # [N]
        timings={str(k): float(v) for k, v in d.get("timings", {}).items()},
    )
