"""Reasoning tasks: rendered arithmetic/geometry, bar-chart QA, visual pattern puzzles.

All answers are numbers so the math verifier scores them; easy levels keep answers to a single
digit and visual elements large, so a tiny model can pick them up on CPU.
"""

from __future__ import annotations

import random

from lit_triune.data.synthetic.common import Drawn
from lit_triune.data.synthetic.render import COLOURS, canvas, cell_box, draw_shape, draw_text_centred

MATH = {"easy": {"lo": 1, "hi": 2, "ops": "+", "font": 36, "stroke": 3},  # bold: see OCR_STROKE
        "medium": {"lo": 0, "hi": 20, "ops": "+-", "font": 24},
        "hard": {"lo": 2, "hi": 9, "ops": "area", "font": 14}}
CHART = {"easy": {"bars": (1, 4), "ask": "count", "slots": 4},
         "medium": {"bars": (3, 4), "ask": "max", "vmax": 5},
         "hard": {"bars": (4, 5), "ask": "range", "vmax": 9}}
PUZZLE_OPTIONS = {"easy": ("red", "green", "blue", "yellow"), "medium": ("square", "circle", "triangle")}


def math(rng: random.Random, difficulty: str, size: int) -> Drawn:
    p = MATH[difficulty]
    img, draw = canvas(size)
    if p["ops"] == "area":  # a rectangle with labelled sides; the answer is its area
        w, h = rng.randint(p["lo"], p["hi"]), rng.randint(p["lo"], p["hi"])
        sx, sy = 10 + w * 8, 10 + h * 8
        x1, y1 = (size - sx) // 2, (size - sy) // 2
        draw.rectangle((x1, y1, x1 + sx, y1 + sy), outline=(0, 0, 0), width=2)
        draw_text_centred(draw, str(w), (x1, y1 + sy, x1 + sx, min(size, y1 + sy + 16)), p["font"])
        draw_text_centred(draw, str(h), (max(0, x1 - 16), y1, x1, y1 + sy), p["font"])
        return Drawn(img, "What is the area of the rectangle?", str(w * h), "mathverify",
                     "Area is width times height.", "math")
    a, b = rng.randint(p["lo"], p["hi"]), rng.randint(p["lo"], p["hi"])
    op = rng.choice(p["ops"])
    if op == "-" and b > a:
        a, b = b, a
    value = a + b if op == "+" else a - b
    draw_text_centred(draw, f"{a}{op}{b}", (0, 0, size, size), p["font"], stroke=p.get("stroke", 0))
    return Drawn(img, "Compute the expression in the image.", str(value), "mathverify", "I compute it.", "math")


def chart(rng: random.Random, difficulty: str, size: int) -> Drawn:
    p = CHART[difficulty]
    img, draw = canvas(size)
    n = rng.randint(*p["bars"])
    top, bottom = 8, size - 8
    if p["ask"] == "count":
        width = (size - 16) // p["slots"]
        slots = sorted(rng.sample(range(p["slots"]), n))
        for s in slots:
            x1 = 8 + s * width + 4
            draw.rectangle((x1, rng.randint(top, size // 2), x1 + width - 9, bottom), fill=COLOURS["blue"])
        return Drawn(img, "How many bars are in the chart?", str(n), "mathverify", "I count the bars.", "chart")
    vmax = p["vmax"]
    values = [rng.randint(1, vmax) for _ in range(n)]
    unit = (bottom - top) / vmax
    for v in range(vmax + 1):  # gridlines with value labels on the left
        y = bottom - v * unit
        draw.line((14, y, size - 2, y), fill=(200, 200, 200))
        draw_text_centred(draw, str(v), (0, int(y) - 5, 14, int(y) + 5), 9)
    width = (size - 18) // n
    for i, v in enumerate(values):
        x1 = 16 + i * width + 2
        draw.rectangle((x1, bottom - v * unit, x1 + width - 5, bottom), fill=COLOURS["blue"])
    if p["ask"] == "max":
        return Drawn(img, "What is the value of the tallest bar?", str(max(values)), "mathverify",
                     "I read the tallest bar.", "chart")
    return Drawn(img, "What is the difference between the tallest and the shortest bar?",
                 str(max(values) - min(values)), "mathverify", "I subtract the shortest from the tallest.", "chart")


def puzzle(rng: random.Random, difficulty: str, size: int) -> Drawn:
    img, draw = canvas(size)
    if difficulty == "easy":  # 2x2 grid: A, B, A, ?  -> B, answered by its option number
        options = PUZZLE_OPTIONS["easy"]
        a, b = rng.sample(options, 2)
        for cell, colour in enumerate((a, b, a)):
            draw_shape(draw, "square", cell_box(cell, 2, size, 44), colour)
        draw_text_centred(draw, "?", cell_box(3, 2, size, 44), 36)
        menu = ", ".join(f"{i + 1}={c}" for i, c in enumerate(options))
        return Drawn(img, f"The colours repeat. Which colour replaces the '?'? Answer with its number ({menu}).",
                     str(options.index(b) + 1), "mathverify", "The pattern alternates.", "puzzle")
    if difficulty == "medium":  # 3x3 grid, a cycle of 3 shapes; the last cell is '?'
        options = PUZZLE_OPTIONS["medium"]
        cycle = rng.sample(options, 3)
        for cell in range(8):
            draw_shape(draw, cycle[cell % 3], cell_box(cell, 3, size, 28), "purple")
        draw_text_centred(draw, "?", cell_box(8, 3, size, 28), 24)
        menu = ", ".join(f"{i + 1}={s}" for i, s in enumerate(options))
        return Drawn(img, f"Which shape replaces the '?'? Answer with its number ({menu}).",
                     str(options.index(cycle[8 % 3]) + 1), "mathverify", "The shapes cycle in threes.", "puzzle")
    start, step = rng.randint(1, 9), rng.randint(2, 6)
    seq = [start + i * step for i in range(4)]
    draw_text_centred(draw, " ".join(map(str, seq)) + " ?", (0, 0, size, size), 14)
    return Drawn(img, "What number comes next in the sequence?", str(start + 4 * step), "mathverify",
                 f"The step is {step}.", "puzzle")
