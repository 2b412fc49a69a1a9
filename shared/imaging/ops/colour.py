"""Colour: grayscale, sepia, invert, auto_contrast, equalize, brightness, contrast,
saturation, posterize. All act on the colour channels and leave alpha as it is.

Every one but grayscale is per pixel once its table or statistics are known, so when the step
owns its input (`OpContext.consume`) the result is written back into it band by band
(`parallel.map_pixels`) instead of into a second full-size image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from PIL import Image, ImageEnhance, ImageOps, ImageStat

from shared.imaging.ops.common import on_colour
from shared.imaging.parallel import map_pixels
from shared.imaging.params import Float, Int
from shared.imaging.registry import OpContext, Params, operation

# Microsoft's sepia matrix (as in CSS `sepia(1)`), one row per output channel.
_SEPIA = (
    0.393,
    0.769,
    0.189,
    0.0,
    0.349,
    0.686,
    0.168,
    0.0,
    0.272,
    0.534,
    0.131,
    0.0,
)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _per_pixel(
    fn: Callable[[Image.Image], Image.Image], threads: int
) -> Callable[[Image.Image, bool], Image.Image]:
    """An `on_colour` function running the per-pixel `fn` in place when it may."""
    return lambda im, owned: map_pixels(im, fn, inplace=owned, threads=threads)


def _point(image: Image.Image, table: list[int], owned: bool, threads: int) -> Image.Image:
    """`image.point(table)`, written back into `image` band by band when `owned`."""
    return map_pixels(image, lambda band: band.point(table), inplace=owned, threads=threads)


class _TableProbe:
    """Stands in for an image in an `ImageOps` function that ends in `image.point(table)`:
    it answers `mode` and `histogram` from the real image and hands back the table instead
    of a new image, so the table can be applied band by band (the same bytes)."""

    def __init__(self, image: Image.Image) -> None:
        self.mode = image.mode
        self._image = image

    def histogram(self, mask: Image.Image | None = None) -> list[int]:
        return self._image.histogram(mask)

    def point(self, table: list[int]) -> list[int]:
        return list(table)


def _imageops_table(
    fn: Callable[..., Image.Image], image: Image.Image, *args: Any
) -> list[int] | None:
    """The lookup table `fn(image, *args)` would apply to `image` (None if it is not one)."""
    if image.mode not in ("L", "RGB"):
        return None
    table: Any = fn(cast(Image.Image, _TableProbe(image)), *args)
    if not isinstance(table, list) or len(table) != 256 * len(image.getbands()):
        return None
    return table


def _imageops(
    fn: Callable[..., Image.Image], ctx: OpContext, *args: Any
) -> Callable[[Image.Image, bool], Image.Image]:
    """An `on_colour` function for `ImageOps.<fn>(image, *args)`: its table applied in place
    when the step may, else the plain call."""

    def apply(im: Image.Image, owned: bool) -> Image.Image:
        table = _imageops_table(fn, im, *args) if owned else None
        if table is None:
            return fn(im, *args)
        return _point(im, table, True, ctx.threads)

    return apply


@operation(
    "grayscale",
    "Convert to shades of grey (ITU-R 601 luma). Transparency is kept.",
    group="colour",
    scale_invariant=True,
    luma_safe=True,
)
def grayscale(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    if image.mode in ("L", "LA"):
        return image
    return image.convert("LA" if image.mode == "RGBA" else "L")


@operation("sepia", "A warm, old-photograph tone.", group="colour", scale_invariant=True)
def sepia(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    return on_colour(
        image, _per_pixel(lambda im: _rgb(im).convert("RGB", _SEPIA), ctx.threads), ctx.consume
    )


@operation(
    "invert", "A photographic negative.", group="colour", scale_invariant=True, luma_safe=True
)
def invert(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    return on_colour(image, _imageops(ImageOps.invert, ctx), ctx.consume)


@operation(
    "auto_contrast",
    "Stretch each channel's levels to the full range, ignoring the darkest and lightest "
    "`cutoff` percent of pixels.",
    Float("cutoff", "Percent of pixels to ignore at each end.", 0.0, minimum=0, maximum=49),
    group="colour",
    scale_invariant=True,
)
def auto_contrast(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    cutoff = params.get("cutoff", 0.0)
    return on_colour(image, _imageops(ImageOps.autocontrast, ctx, cutoff), ctx.consume)


@operation(
    "equalize",
    "Equalise the histogram: spread tones evenly over the range.",
    group="colour",
    scale_invariant=True,
)
def equalize(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    return on_colour(image, _imageops(ImageOps.equalize, ctx), ctx.consume)


def _blend_lut(constant: int, factor: float, bands: int) -> list[int]:
    """`Image.blend(constant image, x, factor)` for every value x, computed by Pillow itself.

    ImageEnhance's brightness and contrast blend the image with a flat "degenerate" image;
    blending is per pixel and position-independent, so one 256-entry table gives exactly the
    same bytes without two more full-size images (12 MP brightness: 79 -> 15 ms).
    """
    ramp = Image.frombytes("L", (256, 64), bytes(range(256)) * 64)  # rows long enough for
    flat = Image.new("L", ramp.size, constant)  # any SIMD path
    return list(Image.blend(flat, ramp, factor).crop((0, 0, 256, 1)).tobytes()) * bands


def _factor(description: str) -> Float:
    return Float("factor", description, required=True, minimum=0, maximum=10)


@operation(
    "brightness",
    "Make the image darker (factor < 1) or brighter (> 1); 1 leaves it unchanged.",
    _factor("0 is black, 1 unchanged, 2 twice as bright."),
    group="colour",
    scale_invariant=True,
    luma_safe=True,
)
def brightness(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    factor = params["factor"]

    def apply(im: Image.Image, owned: bool) -> Image.Image:
        return _point(im, _blend_lut(0, factor, len(im.getbands())), owned, ctx.threads)

    return on_colour(image, apply, ctx.consume)


@operation(
    "contrast",
    "Lower (factor < 1) or raise (> 1) the contrast; 1 leaves it unchanged.",
    _factor("0 is flat grey, 1 unchanged, 2 twice the contrast."),
    group="colour",
    scale_invariant=True,
)
def contrast(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    factor = params["factor"]

    def apply(im: Image.Image, owned: bool) -> Image.Image:
        # As ImageEnhance.Contrast: blend with a flat grey at the image's mean luma.
        mean = int(ImageStat.Stat(im.convert("L")).mean[0] + 0.5)
        return _point(im, _blend_lut(mean, factor, len(im.getbands())), owned, ctx.threads)

    return on_colour(image, apply, ctx.consume)


@operation(
    "saturation",
    "Wash colours out (factor < 1) or make them more vivid (> 1); 0 is grayscale.",
    _factor("0 is grayscale, 1 unchanged, 2 twice as saturated."),
    group="colour",
    scale_invariant=True,
)
def saturation(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    factor = params["factor"]
    if image.mode in ("L", "LA"):
        return image
    # Per pixel: a blend with the pixel's own grey. Bands one at a time: `Image.blend` keeps
    # the GIL, so threads would only contend.
    return on_colour(
        image, _per_pixel(lambda im: ImageEnhance.Color(im).enhance(factor), 1), ctx.consume
    )


@operation(
    "posterize",
    "Reduce each channel to 2^bits levels: a flat, poster-like look.",
    Int("bits", "Bits kept per channel.", 4, minimum=1, maximum=8),
    group="colour",
    scale_invariant=True,
)
def posterize(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    bits = params.get("bits", 4)
    return on_colour(image, _imageops(ImageOps.posterize, ctx, bits), ctx.consume)
