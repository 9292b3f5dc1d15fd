"""Can a visual token tell where it sits? A linear probe from each merged visual token's feature to its
image quadrant, for the quadrant tints of the synthetic box tasks.

    python scripts/position_probe.py [--policy <hf_dir>] [--images 200] [--obj 48 32]

Qwen2.5-VL's ViT has no absolute position embedding (2-D RoPE only), so the box tasks tint the four
quadrants (`CELL_TINTS`) to put "where" into what each token sees. The probe reads the vision tower's
output (the tokens the LLM receives; 112 px -> 4x4 merged tokens, a quadrant = 2x2 of them), scales each to
unit length (the LLM's RMSNorm discards a token's length), and fits a least-squares linear map from the
feature to the quadrant on 80 % of the tokens; it prints the accuracy on the rest (chance 0.25). Images are
drawn as the easy box tasks draw them: two coloured squares of `--obj` px centred in two of the four cells.
`--policy` probes a trained policy (an exported HF directory) instead of the random-init tiny model.
"""

from __future__ import annotations

import argparse
import random

import torch
from PIL import Image, ImageDraw

from lit_triune.data.synthetic.render import CELL_TINTS
from lit_triune.models.tiny import build_tiny_model
from lit_triune.rl import policy as policy_lib

SIZE = 112
PALETTES = {
    "greys (generator v2-v4)": ((255, 255, 255), (228, 228, 228), (200, 200, 200), (172, 172, 172)),
    "hues (CELL_TINTS, v5)": CELL_TINTS,
}


def draw(tints, obj: int, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), "white")
    pen, half = ImageDraw.Draw(img), SIZE // 2
    for cell, tint in enumerate(tints):
        r, c = divmod(cell, 2)
        pen.rectangle((c * half, r * half, (c + 1) * half - 1, (r + 1) * half - 1), fill=tuple(tint))
    margin = (half - obj) // 2
    for cell in rng.sample(range(4), 2):
        r, c = divmod(cell, 2)
        x, y = c * half + margin, r * half + margin
        pen.rectangle((x, y, x + obj - 1, y + obj - 1), fill=rng.choice(("red", "blue")))
    return img


@torch.no_grad()
def token_features(model, processor, images: list[Image.Image]) -> torch.Tensor:
    batch = processor.image_processor(images=images, return_tensors="pt")
    out = model.model.visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"])
    out = getattr(out, "pooler_output", out)  # merged tokens, (N * 16, D) in row-major 4x4 order per image
    return out.reshape(len(images), -1, out.shape[-1])  # (N, 16, D)


def probe_accuracy(features: torch.Tensor) -> float:
    n, tokens, _ = features.shape
    side = int(tokens**0.5)
    quadrant = torch.tensor([(r // (side // 2)) * 2 + c // (side // 2) for r in range(side) for c in range(side)])
    x = torch.nn.functional.normalize(features.reshape(n * tokens, -1), dim=-1)
    x = torch.cat([x, torch.ones(len(x), 1)], dim=1)  # (N*16, D+1): features and a bias
    y = quadrant.repeat(n)  # (N*16,)
    cut = int(0.8 * n) * tokens
    w = torch.linalg.lstsq(x[:cut], torch.nn.functional.one_hot(y[:cut], 4).float()).solution  # (D+1, 4)
    return ((x[cut:] @ w).argmax(1) == y[cut:]).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default=None, help="exported HF directory (default: the random-init tiny model)")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--obj", type=int, nargs="+", default=[48, 32])
    args = p.parse_args()
    torch.manual_seed(0)
    path = args.policy or str(build_tiny_model("tiny"))
    model = policy_lib.load_policy(path).eval()
    processor = policy_lib.load_processor(path)
    print(f"policy: {args.policy or 'random-init tiny'}; token -> quadrant linear probe accuracy (chance 0.25)")
    for name, tints in PALETTES.items():
        for obj in args.obj:
            rng = random.Random(0)
            feats = token_features(model, processor, [draw(tints, obj, rng) for _ in range(args.images)])
            print(f"  {name:24s} object {obj:3d} px: {probe_accuracy(feats):.3f}")


if __name__ == "__main__":
    main()
