"""Reading images safely: sniff, check limits from the header, decode, normalise.

The fixed prologue of every pipeline (imgproxy's order):

1. `open_image`: sniff the format from magic bytes; refuse anything off the allow-list (415)
   before Pillow sees it; open with `formats=[that one format]`; check width, height, frames
   and pixel budgets from the header (422) before a single pixel is decoded.
2. `decode`: decode every frame fully (a truncated file only fails at `load()`), optionally at
   reduced scale (JPEG DCT scaling) or straight to grayscale when the pipeline allows it.
3. `normalise`: apply the EXIF orientation; bring every mode to one of the four working modes
   (L, LA, RGB, RGBA: CMYK, 16-bit, 1-bit, palette and transparency all handled); convert
   pixels to sRGB using the embedded ICC profile, then drop every piece of metadata.

Every Pillow failure is translated into a typed `PixelpipeError`; nothing else escapes.

Colour management: outputs are always sRGB and carry no ICC profile (sRGB is what the web
assumes when there is none). Inputs with a non-sRGB profile (Adobe RGB, Display P3, a CMYK
press profile, ...) are converted through LittleCMS with the perceptual intent.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from PIL import Image, ImageCms, UnidentifiedImageError

from shared.errors import (
    ImageCorrupt,
    ImageTooLarge,
    PixelpipeError,
    UnsupportedMediaType,
)
from shared.imaging.formats import FORMATS, avif_available, sniff
from shared.imaging.limits import Limits

__all__ = [
    "DecodeHints",
    "Picture",
    "Probe",
    "decode",
    "load",
    "normalise",
    "open_image",
    "probe",
    "validate",
]

WORKING_MODES = ("L", "LA", "RGB", "RGBA")

# EXIF orientation -> the transpose that undoes it.
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Probe:
    """What the header says about an image, checked against the limits. No pixels decoded."""

    format: str
    width: int  # as stored (before orientation)
    height: int
    frames: int
    mode: str
    orientation: int  # EXIF orientation, 1 when absent
    bytes: int

    @property
    def oriented_size(self) -> tuple[int, int]:
        """Width and height as the viewer sees them (after the EXIF orientation)."""
        return (
            (self.height, self.width)
            if self.orientation in (5, 6, 7, 8)
            else (self.width, self.height)
        )

    def to_dict(self) -> dict[str, Any]:
        width, height = self.oriented_size
        return {
            "format": self.format,
            "width": width,
            "height": height,
            "frames": self.frames,
            "bytes": self.bytes,
        }


@dataclass
class Picture:
    """A decoded, normalised image: one or more frames in a working mode, metadata gone."""

    frames: list[Image.Image]
    source_format: str
    durations: list[int] = field(default_factory=list)  # per frame, ms (animations)
    loop: int = 0

    @property
    def image(self) -> Image.Image:
        return self.frames[0]

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def animated(self) -> bool:
        return len(self.frames) > 1

    def with_frames(self, frames: list[Image.Image]) -> Picture:
        return Picture(frames, self.source_format, self.durations, self.loop)


@dataclass(frozen=True)
class DecodeHints:
    """How much of the source a pipeline needs: a reduced size and/or grayscale only."""

    min_size: tuple[int, int] | None = None  # decode at >= this size (stored orientation)
    grayscale: bool = False
    first_frame_only: bool = False


@contextlib.contextmanager
def _pillow_errors() -> Iterator[None]:
    """Translate whatever Pillow (or a codec under it) raises into a typed error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except PixelpipeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge("The image declares more pixels than allowed.") from None
        except MemoryError:
            raise ImageTooLarge("The image needs more memory than allowed to decode.") from None
        except ValueError as exc:
            if "text chunk" in str(exc).lower() or "MAX_TEXT" in str(exc):
                raise ImageTooLarge("The image carries more metadata than allowed.") from None
            raise ImageCorrupt() from None
        except UnidentifiedImageError:
            raise ImageCorrupt("The image data is not valid for its format.") from None
        except (
            OSError,
            SyntaxError,
            EOFError,
            struct.error,
            zlib.error,
            IndexError,
            KeyError,
            TypeError,
            AttributeError,
            ZeroDivisionError,
            OverflowError,
            RuntimeError,
            AssertionError,
        ):
            raise ImageCorrupt() from None


def open_image(data: bytes, limits: Limits) -> tuple[Image.Image, Probe]:
    """Sniff, open lazily and check every limit from the header. No pixel data is decoded."""
    limits.check_bytes(len(data))
    if not data:
        raise ImageCorrupt("The image is empty.")
    name, other = sniff(data[:32])
    if name is None:
        what = f"{other} content" if other else "This content"
        raise UnsupportedMediaType(
            f"{what} is not accepted; send {', '.join(sorted(limits.formats)).upper()}."
        )
    if name not in limits.formats or (name == "avif" and not avif_available()):
        raise UnsupportedMediaType(f"{name.upper()} images are not accepted here.")
    with _pillow_errors():
        im = Image.open(io.BytesIO(data), formats=[FORMATS[name].pil])
        width, height = im.size
        limits.check_frame(width, height)
        frames = int(getattr(im, "n_frames", 1) or 1)
        limits.check_frames(width, height, frames)
        orientation = _orientation(im.info.get("exif"))
        if name == "png":
            _check_png_chunks(data)
    return im, Probe(name, width, height, frames, im.mode, orientation, len(data))


def _orientation(raw: bytes | None) -> int:
    """The EXIF orientation, read from the raw EXIF bytes the header parse collected.

    (`Image.getexif()` is not used: for PNG it decodes the whole image to look for an eXIf
    chunk after the pixel data, and would swallow decode errors here.)
    """
    if not raw:
        return 1
    try:
        exif = Image.Exif()
        exif.load(raw)
        value = int(exif.get(0x0112, 1) or 1)
    except Exception:  # a malformed EXIF block only loses its orientation
        return 1
    return value if value in _ORIENTATION else 1


def _check_png_chunks(data: bytes) -> None:
    """Walk every PNG chunk and check its CRC (Pillow never checks the pixel data's CRCs)."""
    view, offset, end = memoryview(data), 8, len(data)
    while offset + 12 <= end:
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        stop = offset + 12 + length
        if length > 0x7FFFFFFF or stop > end:
            raise ImageCorrupt("The PNG file is truncated.")
        stored = int.from_bytes(data[stop - 4 : stop], "big")
        if zlib.crc32(view[offset + 4 : stop - 4]) & 0xFFFFFFFF != stored:
            raise ImageCorrupt(f"The PNG file is damaged (bad checksum in {kind!r} chunk).")
        if kind == b"IEND":
            return
        offset = stop
    raise ImageCorrupt("The PNG file is truncated.")


def probe(data: bytes, limits: Limits) -> Probe:
    """Header-only check: format and limits, without decoding pixels."""
    im, info = open_image(data, limits)
    im.close()
    return info


def decode(data: bytes, limits: Limits, hints: DecodeHints | None = None) -> tuple[Picture, Probe]:
    """Open, check and fully decode `data` into a normalised `Picture`."""
    im, info = open_image(data, limits)
    return load(im, info, hints), info


VALIDATION = DecodeHints(min_size=(1, 1))


def validate(data: bytes, limits: Limits) -> tuple[Picture, Probe]:
    """Check an upload completely: sniff, limits, and a decode of every frame.

    JPEGs are decoded at 1/8 scale: the entropy decoder still reads every byte of every
    scan (so truncation and damage are found) but skips the full-size IDCT and colour
    conversion, about 4x cheaper on a 12 MP photo.
    """
    return decode(data, limits, VALIDATION)


def load(im: Image.Image, info: Probe, hints: DecodeHints | None = None) -> Picture:
    """Decode an image opened by `open_image`: every frame (unless told otherwise), fully."""
    hints = hints or DecodeHints()
    with _pillow_errors():
        if info.format == "jpeg" and (hints.min_size or hints.grayscale):
            im.draft("L" if hints.grayscale else im.mode, hints.min_size)
        icc = im.info.get("icc_profile")
        count = 1 if hints.first_frame_only else info.frames
        frames: list[Image.Image] = []
        durations: list[int] = []
        for index in range(count):
            if index:
                im.seek(index)
            im.load()
            frame = im if count == 1 else im.copy()
            frames.append(normalise(frame, info.orientation, icc))
            durations.append(int(im.info.get("duration", 0) or 0))
        loop = int(im.info.get("loop", 0) or 0)
        if count > 1:
            frames = _same_mode(frames)
    return Picture(frames, info.format, durations if count > 1 else [], loop)


def _same_mode(frames: list[Image.Image]) -> list[Image.Image]:
    """Animation frames decode in mixed modes (GIF: palette first, RGB after); unify them."""
    modes = {f.mode for f in frames}
    if len(modes) == 1:
        return frames
    alpha = any(m in ("LA", "RGBA") for m in modes)
    colour = any(m in ("RGB", "RGBA") for m in modes)
    target = ("RGBA" if alpha else "RGB") if colour else ("LA" if alpha else "L")
    return [f if f.mode == target else f.convert(target) for f in frames]


def normalise(im: Image.Image, orientation: int = 1, icc: bytes | None = None) -> Image.Image:
    """Bring one decoded frame to a working mode, in sRGB, upright, with no metadata."""
    im = _to_working_mode(im, icc)
    transpose = _ORIENTATION.get(orientation)
    if transpose is not None:
        im = im.transpose(transpose)
    im.info = {}
    return im


def _to_working_mode(im: Image.Image, icc: bytes | None) -> Image.Image:
    mode = im.mode
    if mode in ("P", "PA"):
        has_alpha = (
            mode == "PA"
            or "transparency" in im.info
            or (im.palette is not None and im.palette.mode == "RGBA")
        )
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        im = _sixteen_bit_to_l(im)
    elif mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")

    if icc and im.mode in ("RGB", "RGBA", "CMYK"):
        im = _to_srgb(im, icc)
    if im.mode == "CMYK":
        im = im.convert("RGB")
    if im.mode not in WORKING_MODES:
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    if im.mode in ("RGBA", "LA") and im.getchannel("A").getextrema() == (255, 255):
        im = im.convert(im.mode[:-1])  # an all-opaque alpha channel only costs time
    return im


def _sixteen_bit_to_l(im: Image.Image) -> Image.Image:
    if im.mode != "I":
        im = im.convert("I")
    # Scale 0..65535 down to 0..255 (convert("L") alone would clip instead of scaling).
    return im.point(lambda v: v * (1 / 257)).convert("L")


_SRGB = ImageCms.createProfile("sRGB")


def _to_srgb(im: Image.Image, icc: bytes) -> Image.Image:
    transform = _transform_for(hashlib.blake2b(icc, digest_size=16).digest(), icc, im.mode)
    if transform is None:
        return im
    try:
        return ImageCms.applyTransform(im, transform) or im
    except (ImageCms.PyCMSError, ValueError, OSError):
        return im


@lru_cache(maxsize=32)
def _transform_for(digest: bytes, icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A cached LittleCMS transform from an embedded profile to sRGB; None when not needed."""
    del digest  # part of the cache key only
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(profile) or "").lower()
        if mode != "CMYK" and "srgb" in description:
            return None
        out_mode = "RGBA" if mode == "RGBA" else "RGB"
        return ImageCms.buildTransform(
            profile, _SRGB, mode, out_mode, renderingIntent=ImageCms.Intent.PERCEPTUAL
        )
    except (ImageCms.PyCMSError, ValueError, OSError, TypeError):
        return None  # an unusable profile: keep the pixels as they are
