"""PIL drawing helpers shared by the synthetic tasks: palettes, shapes, grid cells, text."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30),
           "purple": (140, 60, 180), "orange": (240, 130, 20)}
SHAPES = ("square", "circle", "triangle", "diamond")
BACKGROUND = (255, 255, 255)


def canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (size, size), BACKGROUND)
    return img, ImageDraw.Draw(img)


CELL_TINTS = ((255, 255, 255), (250, 230, 120), (150, 220, 150), (200, 170, 230))
"""Backgrounds of the cells of a 2x2 layout (reading order): white, yellow, green, lavender. Hues, not greys: a
uniform grey patch is one direction scaled by its level, which normalisation mostly removes, so greys
(generator v2-v4) reached the LLM as a weak cue (scripts/position_probe.py: 0.73 vs 1.00, docs/data.md)."""


def tint_cells(draw: ImageDraw.ImageDraw, size: int) -> None:
    """Fill the four quadrants with distinct hues (`CELL_TINTS`): a position cue a tiny model can read.

    Qwen2.5-VL's ViT has no absolute position embedding (2-D RoPE only), so where a patch sits is not in
    its features; a model of ~1 M parameters did not learn quadrant-level localisation from plain white
    images in the laptop budget (docs/data.md). The hues leave the tasks' red and blue distinct.
    """
    half = size // 2
    for cell, tint in enumerate(CELL_TINTS):
        r, c = divmod(cell, 2)
        draw.rectangle((c * half, r * half, (c + 1) * half - 1, (r + 1) * half - 1), fill=tint)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], colour: str) -> None:
    """Fill `shape` so that it touches all four sides of `box` (x1, y1, x2, y2), making the box exact."""
    x1, y1, x2, y2 = box
    fill = COLOURS[colour]
    # PIL's rectangle/ellipse include the x2/y2 pixel; draw to x2-1 so the pixel box is [x1, x2).
    if shape == "square":
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
    elif shape == "circle":
        draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
    elif shape == "triangle":
        draw.polygon([((x1 + x2 - 1) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=fill)
    elif shape == "diamond":
        cx, cy = (x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2
        draw.polygon([(cx, y1), (x2 - 1, cy), (cx, y2 - 1), (x1, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; available: {SHAPES}")


def cell_box(cell: int, grid: int, size: int, obj: int) -> tuple[int, int, int, int]:
    """The box of an `obj`-pixel object centred in cell `cell` of a `grid` x `grid` layout."""
    step = size // grid
    r, c = divmod(cell, grid)
    off = (step - obj) // 2
    x1, y1 = c * step + off, r * step + off
    return x1, y1, x1 + obj, y1 + obj


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def draw_text_centred(draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int, int, int], size: int,
                      fill: tuple[int, int, int] = (0, 0, 0), stroke: int = 0) -> None:
    """`text` centred in `box`; `stroke` > 0 thickens every glyph by that many pixels (bold)."""
    f = font(size)
    left, t, r, b = draw.textbbox((0, 0), text, font=f, stroke_width=stroke)
    x = box[0] + (box[2] - box[0] - (r - left)) / 2 - left
    y = box[1] + (box[3] - box[1] - (b - t)) / 2 - t
    draw.text((x, y), text, font=f, fill=fill, stroke_width=stroke, stroke_fill=fill)
