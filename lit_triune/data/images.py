"""Image decoding that turns every failure into one error type with a reason."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs rather than exhaust memory


class ImageDecodeError(ValueError):
    """Image bytes that PIL cannot decode fully."""


def image_bytes(img: Any) -> bytes | None:
    """The encoded bytes of an `images` entry (bytes, or a parquet-style {"bytes": ...} dict)."""
    if isinstance(img, (bytes, bytearray)):
        return bytes(img)
    if isinstance(img, dict) and isinstance(img.get("bytes"), (bytes, bytearray)):
        return bytes(img["bytes"])
    return None


def decode_image(img: Any) -> Image.Image:
    """Decode and fully load to RGB; truncated or garbage bytes raise ImageDecodeError."""
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    data = image_bytes(img)
    if data is None:
        raise ImageDecodeError(f"image must be bytes, {{'bytes': ...}} or a PIL image, got {type(img).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ImageDecodeError(f"image of {im.width}x{im.height} exceeds {MAX_IMAGE_PIXELS} pixels")
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageDecodeError):
            raise
        raise ImageDecodeError(f"cannot decode image ({len(data)} bytes): {err}") from err


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def sniff_ext(data: bytes) -> str:
    """File extension for encoded image bytes, so shards keep the original encoding."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return "bin"
