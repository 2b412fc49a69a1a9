"""Filters: blur, sharpen, pixelate, edge_enhance, emboss.

The neighbourhood filters run band-parallel (`parallel.map_bands`) when the operation may use
several threads; the band margin is each filter's reach, so the result is identical to one call.
When the step owns its input (`OpContext.consume`) the bands are written back into it (with a
one-band lag, so every band still reads original pixels), and pixelate writes its blocks back
into it too: a 12 MP filter then needs one full-size image, not two.
"""

from __future__ import annotations

import math

from PIL import Image, ImageFilter

from shared.imaging.ops.common import on_colour
from shared.imaging.parallel import (
    PIXEL_BAND_BYTES,
    map_bands,
    run_bands,
    scratch,
    worth_in_place,
)
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
    inplace: bool,
) -> Image.Image:
    # In place only with threads to spare: on one thread the bands' margins (re-filtered
    # rows) cost 5-15% over one whole-image call.
    return map_bands(
        image,
        lambda band: band.filter(fn_filter),
        margin=margin,
        threads=ctx.threads,
        inplace=inplace and ctx.threads > 1,
    )


def _on_colour_filtered(
    image: Image.Image,
    fn_filter: ImageFilter.Filter | type[ImageFilter.Filter],
    margin: int,
    ctx: OpContext,
) -> Image.Image:
    """`_filtered` on the colour channels only (alpha kept), in place when the step may."""
    return on_colour(
        image, lambda im, owned: _filtered(im, fn_filter, margin, ctx, owned), ctx.consume
    )


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
        out = _filtered(image.convert(premultiplied), kernel, margin, ctx, True)
        return out.convert(image.mode)
    return _filtered(image, kernel, margin, ctx, ctx.consume)


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
    return _on_colour_filtered(image, kernel, gaussian_reach(radius), ctx)


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
    if not worth_in_place(image, ctx.consume):
        return small.resize(image.size, Image.Resampling.NEAREST)
    return _enlarge_into(small, image, ctx.threads)


def _enlarge_into(small: Image.Image, image: Image.Image, threads: int) -> Image.Image:
    """`small.resize(image.size, NEAREST)` written into `image` (whose pixels are no longer
    needed), a run of rows at a time.

    Pillow's nearest scale picks source column sx(x) and source row sy(y) independently, so
    `small` is widened once to full width (its own height); the row map comes from scaling a
    column of row numbers the same way. Output rows sharing a source row form runs; a stretch
    of runs all `n` rows long is its widened rows each repeated `n` times, which a nearest
    scale by exactly `n` gives (row y of it reads row floor((y + 0.5) / n), never a tie).
    """
    width, height = image.size
    nearest = Image.Resampling.NEAREST
    wide = small.resize((width, small.height), nearest)
    column = Image.new("I", (1, small.height))
    column.putdata(range(small.height))
    source_rows = memoryview(column.resize((1, height), nearest).tobytes()).cast("i")
    # Stretches of consecutive source rows whose runs have one length:
    # [first output row, first source row, source rows, run length].
    stretches: list[list[int]] = []
    y = 0
    while y < height:
        row, end = source_rows[y], y + 1
        while end < height and source_rows[end] == row:
            end += 1
        last = stretches[-1] if stretches else None
        if last and last[3] == end - y and last[1] + last[2] == row:
            last[2] += 1
        else:
            stretches.append([y, row, 1, end - y])
        y = end
    # Pieces of about PIXEL_BAND_BYTES of output each: little scratch, work for every thread.
    pieces = [
        (top + i * run, row + i, min(chunk, count - i), run)
        for top, row, count, run in stretches
        for chunk in [max(1, PIXEL_BAND_BYTES // (4 * width * run))]
        for i in range(0, count, chunk)
    ]

    def fill(index: int) -> None:
        top, row, count, run = pieces[index]
        rows = wide.crop((0, row, width, row + count))
        image.paste(rows.resize((width, count * run), nearest), (0, top))

    with scratch():
        run_bands(fill, range(len(pieces)), threads)
    return image


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
    return _on_colour_filtered(image, kernel, 2, ctx)


@operation("emboss", "A raised, grey relief of the image's edges.", group="filter", luma_safe=True)
def emboss(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    return _on_colour_filtered(image, ImageFilter.EMBOSS, 2, ctx)
