"""Geometry: resize, thumbnail, crop, rotate, flip.

The size arithmetic lives in pure functions (`resize_plan`, `crop_box`) so that the planner
(shrink-on-load) and the tests can use it without touching pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from shared.errors import InvalidSpec, OperationFailed
from shared.imaging.ops.common import GRAVITIES, gravity_param, has_alpha
from shared.imaging.parallel import band_pool, mirror_rows
from shared.imaging.params import Bool, Choice, Color, Float, Int, Ratio
from shared.imaging.registry import OpContext, Params, Size, operation

MAX_SIDE = 30_000
LANCZOS = Image.Resampling.LANCZOS
# Shrink by whole factors with a box filter first while the result stays at least this many
# times larger than the target, then finish with Lanczos: the same result to the eye as a
# direct Lanczos, several times faster on large reductions (what libvips does too).
REDUCING_GAP = 3.0

FITS = ("contain", "cover", "fill", "inside", "pad")
# Bicubic rotation costs ~50 ms per output megapixel on one core: bands pay off early.
ROTATE_PARALLEL_PIXELS = 250_000

Rgba = tuple[int, int, int, int]
Fill = int | tuple[int, ...]


@dataclass(frozen=True)
class ResizePlan:
    size: Size  # the resized image (before any padding)
    box: tuple[float, float, float, float]  # the source region to resize
    canvas: Size | None = None  # pad: the final canvas


def resize_plan(
    src: Size,
    width: int | None,
    height: int | None,
    fit: str = "contain",
    upscale: bool = False,
    gravity: str = "center",
) -> ResizePlan:
    """Where each fit mode puts the source: the output size and the source region used."""
    sw, sh = src
    full = (0.0, 0.0, float(sw), float(sh))
    if width is None and height is None:
        return ResizePlan(src, full)
    if fit == "fill":
        tw, th = width or sw, height or sh
        if not upscale:
            tw, th = min(tw, sw), min(th, sh)
        return ResizePlan((max(1, tw), max(1, th)), full)
    if fit == "cover" and width and height:
        scale = max(width / sw, height / sh)
        tw, th = width, height
        if not upscale and scale > 1:
            # Keep the box's aspect but do not enlarge: take a box-shaped region at 1:1.
            tw, th = max(1, round(width / scale)), max(1, round(height / scale))
            scale = 1.0
        cw, ch = tw / scale, th / scale
        gx, gy = GRAVITIES[gravity]
        left, top = (sw - cw) * gx, (sh - ch) * gy
        return ResizePlan((tw, th), (left, top, left + cw, top + ch))
    # contain / inside / pad (and cover given only one side): fit inside, keep the aspect.
    scales = [
        s
        for s in ((width / sw) if width else None, (height / sh) if height else None)
        if s is not None
    ]
    scale = min(scales)
    if not upscale:
        scale = min(scale, 1.0)
    size = (max(1, round(sw * scale)), max(1, round(sh * scale)))
    if fit == "pad" and width and height:
        return ResizePlan(size, full, canvas=(width, height))
    return ResizePlan(size, full)


def _resize_params(params: Params) -> tuple[int | None, int | None, str, bool, str]:
    return (
        params.get("width"),
        params.get("height"),
        params.get("fit", "contain"),
        bool(params.get("upscale", False)),
        params.get("gravity", "center"),
    )


def _check_resize(params: Params, path: str) -> None:
    if params.get("width") is None and params.get("height") is None:
        raise InvalidSpec("resize needs a width, a height or both", path=f"{path}.width")


def plan_scale(plan: ResizePlan) -> float:
    """How much a plan scales its source region (< 1 shrinks): what shrink-on-load needs."""
    left, top, right, bottom = plan.box
    return max(plan.size[0] / (right - left), plan.size[1] / (bottom - top))


def _resize_scale(params: Params, src: Size) -> float:
    return plan_scale(resize_plan(src, *_resize_params(params)))


def _resize_size(params: Params, src: Size) -> Size:
    plan = resize_plan(src, *_resize_params(params))
    return plan.canvas or plan.size


def apply_plan(
    image: Image.Image,
    plan: ResizePlan,
    ctx: OpContext,
    background: Rgba | None = None,
) -> Image.Image:
    ctx.limits.check_output(*(plan.canvas or plan.size))
    box = plan.box
    if plan.size == image.size and box == (0.0, 0.0, float(image.width), float(image.height)):
        out = image
    else:
        out = image.resize(plan.size, LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    if plan.canvas is None:
        return out
    out, fill = _with_background(out, background)
    canvas = Image.new(out.mode, plan.canvas, fill)
    canvas.paste(out, ((plan.canvas[0] - out.width) // 2, (plan.canvas[1] - out.height) // 2))
    return canvas


def _with_background(image: Image.Image, colour: Rgba | None) -> tuple[Image.Image, Fill]:
    """The image (given an alpha channel if the colour needs one) and the colour in its mode.

    The default is transparent for images with alpha and white for the rest.
    """
    if colour is None:
        colour = (0, 0, 0, 0) if has_alpha(image) else (255, 255, 255, 255)
    if colour[3] < 255 and not has_alpha(image):
        image = image.convert(image.mode + "A")
    if image.mode in ("L", "LA"):
        level = round(0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2])
        return image, (level if image.mode == "L" else (level, colour[3]))
    return image, (colour[:3] if image.mode == "RGB" else colour)


@operation(
    "resize",
    "Scale the image. `contain` and `inside` fit it inside width x height keeping its aspect; "
    "`cover` fills the box and crops the overflow (see `gravity`); `fill` stretches to the "
    "box; `pad` fits inside and pads to the exact box with `background`.",
    Int("width", "Target width in pixels.", minimum=1, maximum=MAX_SIDE),
    Int("height", "Target height in pixels.", minimum=1, maximum=MAX_SIDE),
    Choice("fit", "How to fit the image to width x height.", "contain", choices=FITS),
    Bool("upscale", "Allow enlarging an image smaller than the target.", False),
    gravity_param(description="For `cover`: which part to keep when cropping."),
    Color(
        "background",
        "For `pad`: the padding colour (default transparent, or white "
        "where the output cannot be transparent).",
    ),
    group="geometry",
    check=_check_resize,
    scale=_resize_scale,
    out_size=_resize_size,
    luma_safe=True,
)
def resize(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    plan = resize_plan(image.size, *_resize_params(params))
    return apply_plan(image, plan, ctx, params.get("background"))


def _thumb_plan(params: Params, src: Size) -> ResizePlan:
    size = params["size"]
    return resize_plan(
        src,
        size,
        size,
        "cover" if params.get("crop") else "contain",
        upscale=False,
        gravity=params.get("gravity", "center"),
    )


@operation(
    "thumbnail",
    "A thumbnail that fits inside size x size keeping its aspect (never enlarged), or with "
    "`crop: true` a square size x size covering thumbnail.",
    Int("size", "Longest side of the thumbnail, in pixels.", 128, minimum=1, maximum=4096),
    Bool("crop", "Crop to a square instead of fitting inside it.", False),
    gravity_param(description="With `crop`: which part to keep."),
    group="geometry",
    scale=lambda p, src: plan_scale(_thumb_plan(p, src)),
    out_size=lambda p, src: _thumb_plan(p, src).size,
    luma_safe=True,
)
def thumbnail(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    return apply_plan(image, _thumb_plan(params, image.size), ctx)


def crop_box(src: Size, params: Params) -> tuple[int, int, int, int]:
    """The crop region, clamped to the image; an empty intersection is an OperationFailed."""
    sw, sh = src
    if "aspect" in params:
        ratio = params["aspect"]
        cw, ch = (sw, round(sw / ratio)) if sw / sh < ratio else (round(sh * ratio), sh)
        cw, ch = max(1, min(cw, sw)), max(1, min(ch, sh))
        gx, gy = GRAVITIES[params.get("gravity", "center")]
        left, top = round((sw - cw) * gx), round((sh - ch) * gy)
        return left, top, left + cw, top + ch
    x, y = params.get("x", 0), params.get("y", 0)
    right, bottom = min(sw, x + params["width"]), min(sh, y + params["height"])
    if x >= sw or y >= sh or right <= x or bottom <= y:
        raise OperationFailed(f"The crop region starts at ({x}, {y}), outside the {sw}x{sh} image.")
    return x, y, right, bottom


def _box_size(box: tuple[int, int, int, int]) -> Size:
    return box[2] - box[0], box[3] - box[1]


def _check_crop(params: Params, path: str) -> None:
    has_rect = "width" in params or "height" in params
    if "aspect" in params and (has_rect or "x" in params or "y" in params):
        raise InvalidSpec(
            "give either aspect (+ gravity) or x, y, width, height, not both", path=f"{path}.aspect"
        )
    if "aspect" not in params:
        for key in ("width", "height"):
            if key not in params:
                raise InvalidSpec("is required (or give aspect instead)", path=f"{path}.{key}")


@operation(
    "crop",
    "Cut out a rectangle: `x`, `y`, `width`, `height` in pixels (clamped to the image), or "
    "the largest region of an `aspect` ratio placed by `gravity`.",
    Int("x", "Left edge of the region.", minimum=0, maximum=MAX_SIDE),
    Int("y", "Top edge of the region.", minimum=0, maximum=MAX_SIDE),
    Int("width", "Width of the region.", minimum=1, maximum=MAX_SIDE),
    Int("height", "Height of the region.", minimum=1, maximum=MAX_SIDE),
    Ratio("aspect", 'Aspect ratio of the region, e.g. "16:9" or 1.5.'),
    gravity_param(description="With `aspect`: where the region sits."),
    group="geometry",
    check=_check_crop,
    out_size=lambda p, src: _box_size(crop_box(src, p)),
    luma_safe=True,
)
def crop(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    return image.crop(crop_box(image.size, params))


_QUARTER_TURNS = {
    90: Image.Transpose.ROTATE_270,  # Pillow's rotations are counter-clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def _rotated_size(params: Params, src: Size) -> Size:
    angle = params["angle"] % 360
    if angle in (90, 270):
        return src[1], src[0]
    if angle in (0, 180):
        return src
    rad = math.radians(angle)
    cos, sin = abs(math.cos(rad)), abs(math.sin(rad))
    return (math.ceil(src[0] * cos + src[1] * sin), math.ceil(src[0] * sin + src[1] * cos))


@operation(
    "rotate",
    "Rotate clockwise by `angle` degrees. The canvas grows to hold the whole image; the "
    "uncovered corners take `background`. Multiples of 90 are lossless.",
    Float("angle", "Degrees, clockwise.", required=True, minimum=-360, maximum=360),
    Color(
        "background",
        "Colour of the corners (default: transparent for images with transparency, else white).",
    ),
    group="geometry",
    out_size=_rotated_size,
    luma_safe=True,
)
def rotate(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    angle = params["angle"] % 360
    if angle == 0:
        return image
    turn = _QUARTER_TURNS.get(int(angle)) if float(angle).is_integer() else None
    if turn == Image.Transpose.ROTATE_180:
        return mirror_rows(image, turn, inplace=ctx.consume, threads=ctx.threads)
    if turn is not None:
        return image.transpose(turn)
    ctx.limits.check_output(*_rotated_size(params, image.size))
    image, fill = _with_background(image, params.get("background"))
    width, height = _rotated_size(params, image.size)
    if ctx.threads > 1 and width * height >= ROTATE_PARALLEL_PIXELS:
        return _rotate_bands(image, -angle, fill, ctx.threads)
    return image.rotate(-angle, Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def _rotate_matrix(size: Size, angle: float) -> tuple[list[float], Size]:
    """`Image.rotate(angle, expand=True)`'s inverse affine matrix and canvas, computed the
    way Pillow computes them (so that the bands below give byte-identical output)."""
    w, h = size
    rad = -math.radians(angle)
    matrix = [
        round(math.cos(rad), 15),
        round(math.sin(rad), 15),
        0.0,
        round(-math.sin(rad), 15),
        round(math.cos(rad), 15),
        0.0,
    ]

    def transform(x: float, y: float) -> tuple[float, float]:
        a, b, c, d, e, f = matrix
        return a * x + b * y + c, d * x + e * y + f

    matrix[2], matrix[5] = transform(-w / 2, -h / 2)
    matrix[2] += w / 2
    matrix[5] += h / 2
    xs, ys = zip(*(transform(x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))), strict=True)
    nw = math.ceil(max(xs)) - math.floor(min(xs))
    nh = math.ceil(max(ys)) - math.floor(min(ys))
    matrix[2], matrix[5] = transform(-(nw - w) / 2.0, -(nh - h) / 2.0)
    return matrix, (nw, nh)


def _rotate_bands(image: Image.Image, angle: float, fill: Fill, threads: int) -> Image.Image:
    """Pillow's bicubic rotate (scalar, one thread) as horizontal bands of the output on the
    band pool: each band is the same affine transform with its translation moved to the
    band's top row. L and RGB bands are written straight into one canvas; modes with alpha
    (which Pillow premultiplies around the transform) go through `Image.transform` per band.
    The output is byte-identical to `image.rotate(...)` (tested)."""
    matrix, (nw, nh) = _rotate_matrix(image.size, angle)
    step = -(-nh // threads)
    a, b, c, d, e, f = matrix
    result = Image.new(image.mode, (nw, nh), fill)
    image.load()

    def band(top: int) -> None:
        bottom = min(nh, top + step)
        shifted = (a, b, c + b * top, d, e, f + e * top)
        if image.mode in ("L", "RGB"):
            result.im.transform(
                (0, top, nw, bottom),
                image.im,
                Image.Transform.AFFINE,
                shifted,
                Image.Resampling.BICUBIC,
                0,
            )
            return
        part = image.transform(
            (nw, bottom - top),
            Image.Transform.AFFINE,
            shifted,
            Image.Resampling.BICUBIC,
            fillcolor=fill,
        )
        result.paste(part, (0, top))

    list(band_pool().map(band, range(0, nh, step)))
    return result


@operation(
    "flip",
    "Mirror the image: `horizontal` (left-right), `vertical` (top-bottom) or `both`.",
    Choice(
        "direction",
        "Which way to mirror.",
        "horizontal",
        choices=("horizontal", "vertical", "both"),
    ),
    group="geometry",
    scale_invariant=True,
    luma_safe=True,
)
def flip(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    direction = params.get("direction", "horizontal")
    method = {
        "horizontal": Image.Transpose.FLIP_LEFT_RIGHT,
        "vertical": Image.Transpose.FLIP_TOP_BOTTOM,
    }.get(direction, Image.Transpose.ROTATE_180)
    # In place (pairs of mirrored bands) when the step owns its input.
    return mirror_rows(image, method, inplace=ctx.consume, threads=ctx.threads)
