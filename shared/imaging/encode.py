"""Writing images: the fixed epilogue of every pipeline.

Outputs are always re-encoded from pixels (nothing of the source's bytes survives: no EXIF,
GPS, XMP, ICC profile, comments or trailing data), in sRGB, with these defaults:

| format | default                                    | `quality` means                          |
|--------|--------------------------------------------|------------------------------------------|
| jpeg   | q85, progressive, optimised Huffman tables | JPEG quality 1-100                       |
| png    | lossless, zlib level 6, adaptive filters   | < 100: quantise to a 256-colour palette  |
| webp   | q80, method 4                              | WebP quality 1-100                       |
| gif    | 256-colour palette per frame               | ignored                                  |
| avif   | q60, speed 6                               | AVIF quality 1-100                       |

Animations stay animated in PNG (APNG), WebP and GIF, with their frame timings and loop
count; JPEG and AVIF outputs take the first frame. JPEG has no transparency: transparent
pixels are flattened onto white.

`max_bytes` asks for the best quality that fits: a binary search over quality for the lossy
formats, palette quantisation for PNG; when even the smallest encoding is too big the
operation fails with TARGET_SIZE_UNREACHABLE.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, features

from shared.errors import OperationFailed, TargetSizeUnreachable
from shared.imaging.decode import Picture
from shared.imaging.formats import FORMATS, avif_available

__all__ = ["Encoded", "encode"]

PNG_COMPRESS_LEVEL = 6
WEBP_METHOD = 4
AVIF_SPEED = 6
MIN_SEARCH_QUALITY = 5
_QUANTIZE = (
    Image.Quantize.LIBIMAGEQUANT
    if features.check_feature("libimagequant")
    else Image.Quantize.MEDIANCUT
)


@dataclass(frozen=True)
class Encoded:
    data: bytes
    format: str
    width: int
    height: int
    frames: int
    quality: int | None

    @property
    def content_type(self) -> str:
        return FORMATS[self.format].mime

    @property
    def extension(self) -> str:
        return FORMATS[self.format].extension

    def describe(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "contentType": self.content_type,
            "width": self.width,
            "height": self.height,
            "bytes": len(self.data),
            "frames": self.frames,
        }


def encode(
    picture: Picture,
    fmt: str,
    quality: int | None = None,
    max_bytes: int | None = None,
    *,
    threads: int = 1,
) -> Encoded:
    """Encode `picture` as `fmt` (a key of FORMATS)."""
    if fmt not in FORMATS or (fmt == "avif" and not avif_available()):
        raise OperationFailed(f"{fmt.upper()} output is not available.")
    spec = FORMATS[fmt]
    frames = picture.frames if spec.animation else picture.frames[:1]
    if fmt == "jpeg":
        frames = [_flatten(f) for f in frames]
    elif fmt == "gif":
        frames = [_to_palette(f, 256) for f in frames]

    def attempt(q: int | None, palette: bool = False) -> bytes:
        return _save(fmt, frames, picture, q, palette, threads)

    if max_bytes is None:
        data = attempt(
            quality if quality is not None else spec.default_quality,
            palette=fmt == "png" and quality is not None and quality < 100,
        )
        used = quality if quality is not None else spec.default_quality
    else:
        data, used = _fit(fmt, attempt, quality, max_bytes)
    first = frames[0]
    return Encoded(data, fmt, first.width, first.height, len(frames), used)


def _fit(fmt: str, attempt: Any, quality: int | None, max_bytes: int) -> tuple[bytes, int | None]:
    spec = FORMATS[fmt]
    if spec.default_quality is None:  # lossless formats: full, then a palette
        data = attempt(None)
        if len(data) <= max_bytes:
            return data, None
        if fmt == "png":
            data = attempt(None, palette=True)
            if len(data) <= max_bytes:
                return data, None
        raise TargetSizeUnreachable(
            f"The smallest {fmt.upper()} encoding is {len(data)} bytes, over max_bytes "
            f"({max_bytes}); try a lossy format.",
            smallest=len(data),
        )
    high = quality if quality is not None else spec.default_quality
    data = attempt(high)
    if len(data) <= max_bytes:
        return data, high
    low_data = attempt(MIN_SEARCH_QUALITY)
    if len(low_data) > max_bytes:
        raise TargetSizeUnreachable(
            f"Even at quality {MIN_SEARCH_QUALITY} the image is {len(low_data)} bytes, over "
            f"max_bytes ({max_bytes}); resize it first.",
            smallest=len(low_data),
        )
    best, best_q = low_data, MIN_SEARCH_QUALITY
    low = MIN_SEARCH_QUALITY
    while high - low > 1:  # invariant: low fits, high does not
        mid = (low + high) // 2
        data = attempt(mid)
        if len(data) <= max_bytes:
            low, best, best_q = mid, data, mid
        else:
            high = mid
    return best, best_q


def _flatten(frame: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    if frame.mode == "RGBA":
        canvas = Image.new("RGB", frame.size, background)
        canvas.paste(frame, mask=frame.getchannel("A"))
        return canvas
    if frame.mode == "LA":
        canvas = Image.new("L", frame.size, round(sum(background) / 3))
        canvas.paste(frame.getchannel("L"), mask=frame.getchannel("A"))
        return canvas
    return frame


def _to_palette(frame: Image.Image, colours: int) -> Image.Image:
    """Quantise to a palette, reserving the last index for transparency if there is alpha."""
    if frame.mode in ("RGBA", "LA"):
        alpha = frame.getchannel("A")
        paletted = frame.convert("RGB").quantize(colours - 1, method=_QUANTIZE)
        clear = alpha.point(lambda a: 255 if a < 128 else 0, "1")
        paletted.paste(colours - 1, mask=clear)
        paletted.info["transparency"] = colours - 1
        return paletted
    return frame.convert("RGB").quantize(colours, method=_QUANTIZE)


def _save(
    fmt: str,
    frames: list[Image.Image],
    picture: Picture,
    quality: int | None,
    palette: bool,
    threads: int,
) -> bytes:
    out = io.BytesIO()
    first, rest = frames[0], frames[1:]
    options: dict[str, Any] = {}
    if rest:
        options.update(
            save_all=True,
            append_images=rest,
            loop=picture.loop,
            duration=picture.durations[: len(frames)] or 100,
        )
    if fmt == "jpeg":
        options.update(quality=quality, optimize=True, progressive=True)
    elif fmt == "png":
        if palette:
            first = _to_palette(first, 256)
            if rest:
                options["append_images"] = [_to_palette(f, 256) for f in rest]
        options.update(compress_level=PNG_COMPRESS_LEVEL)
    elif fmt == "webp":
        options.update(quality=quality, method=WEBP_METHOD)
    elif fmt == "gif":
        options.update(
            optimize=False, disposal=2 if first.info.get("transparency") is not None else 1
        )
    elif fmt == "avif":
        options.update(quality=quality, speed=AVIF_SPEED, max_threads=max(1, threads))
    first.save(out, format=FORMATS[fmt].pil, **options)
    return out.getvalue()
