"""Perception tasks: counting, detection, grounding, OCR.

Easy levels are sized for a 0.7 M-parameter model on 112 px images (16 visual tokens): large
objects, few classes, one-token answers, and boxes drawn from a few fixed grid cells, because
finer localisation stayed at chance at that size (see DESIGN.md, facts measured).
"""

from __future__ import annotations

import random

from lit_triune.boxes import Box, format_boxes
from lit_triune.data.synthetic.common import Drawn
from lit_triune.data.synthetic.render import (
    COLOURS,
    SHAPES,
    canvas,
    cell_box,
    draw_shape,
    draw_text_centred,
    tint_cells,
)

# difficulty -> knobs; documented in docs/data.md
COUNTING = {
    "easy": {"grid": 3, "obj": 36, "min": 1, "max": 5, "shapes": ("square",), "colours": ("blue",), "query": False},
    "medium": {"grid": 4, "obj": 22, "min": 1, "max": 5, "shapes": SHAPES[:2], "colours": ("blue", "red"), "query": False},
    "hard": {"grid": 5, "obj": 16, "min": 0, "max": 9, "shapes": SHAPES, "colours": tuple(COLOURS)[:4], "query": True},
}
DETECTION = {
    "easy": {"grid": 2, "obj": 32, "min": 1, "max": 3, "shapes": ("square", "circle"), "tint": True},
    "medium": {"grid": 3, "obj": 30, "min": 2, "max": 3, "shapes": ("square", "circle", "triangle")},
    "hard": {"grid": 0, "obj": (12, 32), "min": 3, "max": 5, "shapes": SHAPES},
}
GROUNDING = {
    "easy": {"grid": 2, "obj": 32, "n": 2, "colours": ("red", "blue"), "shapes": ("square",), "tint": True},
    "medium": {"grid": 3, "obj": 30, "n": 3, "colours": ("red", "blue", "green"), "shapes": ("square", "circle")},
    "hard": {"grid": 4, "obj": 22, "n": 5, "colours": tuple(COLOURS)[:4], "shapes": SHAPES},
}
OCR_WORDS = {
    "easy": ("go", "sun", "tree", "apple"),  # different widths: a first cue for a tiny ViT
    "medium": ("tree", "book", "lamp", "fish", "milk", "rain", "ship", "door", "bird", "cake",
               "moon", "star", "road", "leaf", "gold", "salt", "wind", "frog", "bell", "coin"),
    "hard": ("apple", "river", "cloud", "stone", "piano", "tiger", "glass", "chair", "bread", "light",
             "plant", "sugar", "house", "train", "money", "water", "green", "smile", "paper", "night"),
}
OCR_FONT = {"easy": 36, "medium": 24, "hard": 16}
OCR_STROKE = {"easy": 3, "medium": 0, "hard": 0}  # bold easy words: thin strokes left a tiny ViT's features ~1 % apart


def _place(rng: random.Random, k: int, grid: int, size: int, obj: int, jitter: bool) -> list[tuple[int, int, int, int]]:
    """k non-overlapping boxes in distinct grid cells, optionally jittered inside the cell."""
    boxes = []
    step = size // grid
    for cell in rng.sample(range(grid * grid), k):
        x1, y1, x2, y2 = cell_box(cell, grid, size, obj)
        if jitter:
            slack = (step - obj) // 2
            dx, dy = rng.randint(-slack, slack), rng.randint(-slack, slack)
            x1, y1, x2, y2 = x1 + dx, y1 + dy, x2 + dx, y2 + dy
        boxes.append((x1, y1, x2, y2))
    return boxes


def _free_boxes(rng: random.Random, k: int, size: int, lo: int, hi: int) -> list[tuple[int, int, int, int]]:
    """k non-overlapping random boxes (rejection sampling, bounded)."""
    out: list[tuple[int, int, int, int]] = []
    for _ in range(2000):
        if len(out) == k:
            break
        s = rng.randint(lo, hi)
        x, y = rng.randint(0, size - s), rng.randint(0, size - s)
        cand = (x, y, x + s, y + s)
        if all(cand[2] + 2 <= b[0] or b[2] + 2 <= cand[0] or cand[3] + 2 <= b[1] or b[3] + 2 <= cand[1] for b in out):
            out.append(cand)
    if len(out) < k:
        raise ValueError(f"could not place {k} boxes of {lo}-{hi} px in a {size} px image")
    return out


def counting(rng: random.Random, difficulty: str, size: int) -> Drawn:
    p = COUNTING[difficulty]
    img, draw = canvas(size)
    k = rng.randint(p["min"], p["max"])
    boxes = _place(rng, k, p["grid"], size, p["obj"], jitter=difficulty != "easy")
    items = [(rng.choice(p["shapes"]), rng.choice(p["colours"])) for _ in boxes]
    for box, (shape, colour) in zip(boxes, items, strict=False):
        draw_shape(draw, shape, box, colour)
    if p["query"]:
        colour = rng.choice(p["colours"])
        answer = sum(c == colour for _, c in items)
        question = f"How many {colour} shapes are in the image?"
    else:
        answer, question = k, ("How many squares are in the image?" if p["shapes"] == ("square",)
                               else "How many shapes are in the image?")
    return Drawn(img, question, str(answer), "counting", "I count the shapes.", "counting")


def detection(rng: random.Random, difficulty: str, size: int) -> Drawn:
    p = DETECTION[difficulty]
    img, draw = canvas(size)
    if p.get("tint"):
        tint_cells(draw, size)
    k = rng.randint(p["min"], p["max"])
    if p["grid"]:
        boxes = _place(rng, k, p["grid"], size, p["obj"], jitter=False)
    else:
        boxes = _free_boxes(rng, k, size, *p["obj"])
    boxes.sort(key=lambda b: (b[1], b[0]))  # reading order: one canonical answer per image
    objects = []
    for box in boxes:
        shape = rng.choice(p["shapes"])
        draw_shape(draw, shape, box, "blue" if difficulty == "easy" else rng.choice(tuple(COLOURS)))
        objects.append(Box(*box, label=shape))
    names = ", ".join(p["shapes"])
    question = f"Detect every shape ({names}) and give each box as bbox_2d with its label."
    return Drawn(img, question, format_boxes(objects), "detection", "I locate each shape.", "detection",
                 {"normalized": False})


def grounding(rng: random.Random, difficulty: str, size: int) -> Drawn:
    p = GROUNDING[difficulty]
    img, draw = canvas(size)
    if p.get("tint"):
        tint_cells(draw, size)
    boxes = _place(rng, p["n"], p["grid"], size, p["obj"], jitter=False)
    combos = [(c, s) for c in p["colours"] for s in p["shapes"]]
    items = rng.sample(combos, p["n"]) if len(combos) >= p["n"] else [rng.choice(combos) for _ in boxes]
    for box, (colour, shape) in zip(boxes, items, strict=False):
        draw_shape(draw, shape, box, colour)
    unique = [i for i, it in enumerate(items) if items.count(it) == 1]
    target = rng.choice(unique) if unique else 0
    colour, shape = items[target]
    phrase = f"the {colour} {shape}" if len(p["shapes"]) > 1 else f"the {colour} shape"
    answer = format_boxes([Box(*boxes[target])], bare=True)
    return Drawn(img, f"Locate {phrase} and give its bounding box.", answer, "grounding",
                 f"I find {phrase}.", "grounding", {"normalized": False})


def ocr(rng: random.Random, difficulty: str, size: int) -> Drawn:
    img, draw = canvas(size)
    words = OCR_WORDS[difficulty]
    text = rng.choice(words)
    if difficulty == "hard":
        text = f"{text} {rng.choice(words)}"
    draw_text_centred(draw, text, (0, 0, size, size), OCR_FONT[difficulty], stroke=OCR_STROKE[difficulty])
    return Drawn(img, "What text is written in the image?", text, "ocr", "I read the text.", "ocr")
