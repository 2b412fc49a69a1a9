"""Filters: blur, sharpen, pixelate, edge_enhance, emboss.

The neighbourhood filters run band-parallel (`parallel.map_bands`) when the operation may use
several threads; the band margin is each filter's reach, so the result is identical to one call.
"""

from __future__ import annotations

import math

from PIL import Image, ImageFilter

from shared.imaging.ops.common import on_colour
from shared.imaging.parallel import map_bands
from shared.imaging.params import Choice, Float, Int
from shared.imaging.registry import OpContext, Params, operation


def gaussian_reach(radius: float) -> int:
    """How far (in pixels) Pillow's Gaussian blur reads around each pixel.

    Pillow approximates a Gaussian of standard deviation `radius` by three box blurs whose
    radius is at most sqrt(4 r^2 / 3 + 1/3) / 2 + 1/2 (see `_gaussian_blur_radius` in
    libImaging/BoxBlur.c); each pass reads one pixel past its fractional radius.
    """
    box = math.sqrt(12 * radius * radius / 3 + 1) / 2 + 0.5
    return 3 * (math.floor(box) + 1) + 2


def _filtered(
    image: Image.Image,
    fn_filter: ImageFilter.Filter | type[ImageFilter.Filter],
    margin: int,
    ctx: OpContext,
) -> Image.Image:
    return map_bands(image, lambda band: band.filter(fn_filter), margin=margin, threads=ctx.threads)


@operation(
    "blur",
    "Gaussian blur; `radius` is the standard deviation in pixels.",
    Float("radius", "Blur strength in pixels.", 2.0, minimum=0.1, maximum=100),
    group="filter",
    luma_safe=True,
)
def blur(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    radius = params.get("radius", 2.0)
    kernel = ImageFilter.GaussianBlur(radius)
    margin = gaussian_reach(radius)
    if image.mode in ("RGBA", "LA"):
        # Blur premultiplied colour so transparent pixels do not bleed dark fringes.
        premultiplied = image.mode[:-1] + "a"
        out = _filtered(image.convert(premultiplied), kernel, margin, ctx)
        return out.convert(image.mode)
    return _filtered(image, kernel, margin, ctx)


@operation(
    "sharpen",
    "Unsharp mask: boost edges by `percent` where they differ by more than `threshold`.",
    Float("radius", "Size of the edges to sharpen, in pixels.", 2.0, minimum=0.1, maximum=50),
    Int("percent", "Strength of the sharpening.", 150, minimum=1, maximum=1000),
    Int("threshold", "Smallest difference that gets sharpened (0-255).", 3, minimum=0, maximum=255),
    group="filter",
    luma_safe=True,
)
def sharpen(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    radius = params.get("radius", 2.0)
    kernel = ImageFilter.UnsharpMask(radius, params.get("percent", 150), params.get("threshold", 3))
    return on_colour(image, lambda im: _filtered(im, kernel, gaussian_reach(radius), ctx))


@operation(
    "pixelate",
    "Turn the image into blocks of `size` x `size` pixels.",
    Int("size", "Block size in pixels.", 10, minimum=2, maximum=1024),
    group="filter",
    luma_safe=True,
)
def pixelate(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    size = params.get("size", 10)
    small = image.resize(
        (max(1, -(-image.width // size)), max(1, -(-image.height // size))), Image.Resampling.BOX
    )
    return small.resize(image.size, Image.Resampling.NEAREST)


@operation(
    "edge_enhance",
    "Emphasise edges (`more` for a stronger effect).",
    Choice("strength", "How strongly.", "normal", choices=("normal", "more")),
    group="filter",
    luma_safe=True,
)
def edge_enhance(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    kernel = (
        ImageFilter.EDGE_ENHANCE_MORE
        if params.get("strength") == "more"
        else ImageFilter.EDGE_ENHANCE
    )
    return on_colour(image, lambda im: _filtered(im, kernel, 2, ctx))


@operation("emboss", "A raised, grey relief of the image's edges.", group="filter", luma_safe=True)
def emboss(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    return on_colour(image, lambda im: _filtered(im, ImageFilter.EMBOSS, 2, ctx))
