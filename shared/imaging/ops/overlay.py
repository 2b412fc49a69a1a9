"""Overlays: watermark.

The text is drawn once onto a small transparent patch (with a thin contrasting outline so it
reads on any background) and pasted where it goes, or tiled, instead of compositing a
full-size overlay: on a 12 MP photo that is the difference between a few milliseconds and a
few hundred.
"""

from __future__ import annotations

import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from shared.imaging.ops.common import GRAVITIES
from shared.imaging.params import Choice, Color, Float, Int, Text
from shared.imaging.registry import OpContext, Params, operation

POSITIONS = (*GRAVITIES, "tile")


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled FreeType font (Aileron); no font file ships with pixelpipe.
    return ImageFont.load_default(size=size)


def _patch(text: str, size: int, colour: tuple[int, int, int, int], opacity: float) -> Image.Image:
    font = _font(size)
    stroke = max(1, size // 18)
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    box = probe.textbbox((0, 0), text, font=font, stroke_width=stroke)
    left, top, right, bottom = (
        math.floor(box[0]),
        math.floor(box[1]),
        math.ceil(box[2]),
        math.ceil(box[3]),
    )
    patch = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    light = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 128
    outline = (0, 0, 0) if light else (255, 255, 255)
    alpha = round(colour[3] * opacity)
    ImageDraw.Draw(patch).text(
        (-left, -top),
        text,
        font=font,
        fill=(*colour[:3], alpha),
        stroke_width=stroke,
        stroke_fill=(*outline, round(alpha * 0.6)),
    )
    return patch


@operation(
    "watermark",
    "Stamp `text` on the image at `position` (a compass point, `center`, or `tile` to repeat "
    "it across the image) with the given `opacity`.",
    Text("text", "The text to stamp.", required=True, max_length=200),
    Choice("position", "Where the text goes.", "southeast", choices=POSITIONS),
    Float("opacity", "0 is invisible, 1 fully opaque.", 0.5, minimum=0, maximum=1),
    Int("size", "Font size in pixels (default: 5% of the shorter side).", minimum=6, maximum=2000),
    Color("color", "Text colour.", "white"),
    Int(
        "margin",
        "Distance from the edges in pixels (default: half the font size).",
        minimum=0,
        maximum=10000,
    ),
    group="overlay",
)
def watermark(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    size = params.get("size") or max(12, round(min(image.size) * 0.05))
    colour = params.get("color", (255, 255, 255, 255))
    patch = _patch(params["text"], size, colour, params.get("opacity", 0.5))
    margin = params.get("margin")
    margin = size // 2 if margin is None else margin
    mode = {"L": "RGB", "LA": "RGBA"}.get(image.mode, image.mode)
    # Draw on the input only when the step owns it; else on a copy (convert always copies).
    base = image if mode == image.mode and ctx.consume else image.convert(mode)
    position = params.get("position", "southeast")
    if position == "tile":
        spots = _tiles(base.size, patch.size, margin)
    else:
        gx, gy = GRAVITIES[position]
        spots = [
            (
                round(margin + (base.width - patch.width - 2 * margin) * gx),
                round(margin + (base.height - patch.height - 2 * margin) * gy),
            )
        ]
    for x, y in spots:
        if base.mode == "RGBA":
            _composite_clipped(base, patch, x, y)
        else:
            base.paste(patch, (x, y), patch)
    return base


def _tiles(size: tuple[int, int], patch: tuple[int, int], margin: int) -> list[tuple[int, int]]:
    step_x, step_y = patch[0] + 2 * max(margin, patch[1]), patch[1] + 2 * max(margin, patch[1])
    spots: list[tuple[int, int]] = []
    for row, y in enumerate(range(0, size[1], step_y)):
        offset = (step_x // 2) * (row % 2)
        spots.extend((x - offset, y) for x in range(0, size[0] + offset, step_x))
    return spots


def _composite_clipped(base: Image.Image, patch: Image.Image, x: int, y: int) -> None:
    """`alpha_composite` refuses destinations outside the image; clip the patch instead."""
    left, top = max(0, -x), max(0, -y)
    right = min(patch.width, base.width - x)
    bottom = min(patch.height, base.height - y)
    if right > left and bottom > top:
        base.alpha_composite(patch, (x + left, y + top), (left, top, right, bottom))
