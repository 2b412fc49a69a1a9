"""A photo-like sample image made in code (gradients, shapes with edges, fine texture), for
the demo and the benchmarks: no binary sample ships with the repo."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFilter

__all__ = ["photo", "photo_jpeg"]


def photo(width: int = 4000, height: int = 3000, seed: int = 0) -> Image.Image:
    base_w, base_h = max(8, width // 8), max(8, height // 8)
    red = Image.linear_gradient("L").resize((base_w, base_h))
    green = Image.radial_gradient("L").resize((base_w, base_h))
    blue = red.transpose(Image.Transpose.ROTATE_90).resize((base_w, base_h))
    im = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(im)
    step = max(4, base_w // 7)
    for i in range(7):
        x0, y0 = (i * step + seed * 11) % base_w, (i * step * 2 + seed * 5) % base_h
        draw.ellipse((x0, y0, x0 + step * 2, y0 + step), fill=(50 * i % 255, 210 - 25 * i, 80))
        draw.rectangle(
            (base_w - x0 - step, y0, base_w - x0, y0 + step * 2), outline=(250, 250, 240), width=1
        )
    im = im.resize((width, height), Image.Resampling.BICUBIC)
    texture = Image.effect_noise((width, height), 28).convert("RGB")
    return Image.blend(im, texture, 0.1).filter(ImageFilter.SMOOTH)


def photo_jpeg(width: int = 4000, height: int = 3000, quality: int = 90, seed: int = 0) -> bytes:
    out = io.BytesIO()
    photo(width, height, seed).save(out, "JPEG", quality=quality)
    return out.getvalue()
