"""Image formats: what pixelpipe reads and writes, and how it recognises them from bytes.

The format of an input is always sniffed from its first bytes; names, extensions and declared
content types are never trusted. Formats that Pillow could decode but that are not on the
allow-list (TIFF, PSD, EPS, PDF, FITS, DDS, BMP, ...) are recognised only to say so clearly in
the 415 error: their bytes never reach a decoder, because `Image.open` is always called with
`formats=[<the sniffed format>]`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FORMATS", "ImageFormat", "avif_available", "output_format_for", "sniff"]


@dataclass(frozen=True)
class ImageFormat:
    name: str  # the public name: "jpeg"
    pil: str  # Pillow's format id: "JPEG"
    mime: str
    extension: str
    alpha: bool  # can carry transparency
    animation: bool  # can carry several frames
    web: bool  # a sensible default output for browsers
    default_quality: int | None  # None: lossless, `quality` has another meaning (see encode)


FORMATS: dict[str, ImageFormat] = {
    f.name: f
    for f in (
        ImageFormat("jpeg", "JPEG", "image/jpeg", "jpg", False, False, True, 85),
        ImageFormat("png", "PNG", "image/png", "png", True, True, True, None),
        ImageFormat("webp", "WEBP", "image/webp", "webp", True, True, True, 80),
        ImageFormat("gif", "GIF", "image/gif", "gif", True, True, False, None),
        ImageFormat("avif", "AVIF", "image/avif", "avif", True, False, True, 60),
    )
}

# Formats recognised only to be refused by name. Order matters where magic overlaps.
_REFUSED_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"8BPS", 0, "PSD"),
    (b"%!PS", 0, "EPS"),
    (b"\xc5\xd0\xd3\xc6", 0, "EPS"),
    (b"%PDF", 0, "PDF"),
    (b"SIMPLE  =", 0, "FITS"),
    (b"DDS ", 0, "DDS"),
    (b"BM", 0, "BMP"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"\xd0\xcf\x11\xe0", 0, "FlashPix/OLE"),
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG 2000"),
    (b"\xffO\xffQ", 0, "JPEG 2000"),
    (b"qoif", 0, "QOI"),
    (b"PK\x03\x04", 0, "ZIP"),
)


def _is_avif(head: bytes) -> bool:
    # ISO-BMFF: size(4) 'ftyp' major_brand(4) minor(4) compatible_brands...
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    size = int.from_bytes(head[:4], "big")
    brands = head[8:12] + head[16 : max(16, min(size, len(head)))]
    return any(brands[i : i + 4] in (b"avif", b"avis") for i in range(0, len(brands) - 3, 4))


def _is_heif(head: bytes) -> bool:
    return (
        len(head) >= 12
        and head[4:8] == b"ftyp"
        and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")
    )


def sniff(head: bytes) -> tuple[str | None, str | None]:
    """Identify a format from the first bytes (32 are enough).

    Returns `(name, None)` for a format pixelpipe can read (`name` is a key of FORMATS), or
    `(None, description)` for content that is something else (a refused image format, SVG,
    HTML, ...), or `(None, None)` when nothing is recognised.
    """
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg", None
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png", None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif", None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp", None
    if _is_avif(head):
        return "avif", None
    if _is_heif(head):
        return None, "HEIF/HEIC"
    for magic, offset, name in _REFUSED_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return None, name
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")):
        return None, "SVG/XML"
    if text.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<script")):
        return None, "HTML"
    return None, None


_avif: bool | None = None


def avif_available() -> bool:
    """Whether AVIF can be decoded and encoded here (the pillow-avif-plugin is importable)."""
    global _avif
    if _avif is None:
        try:
            import pillow_avif  # noqa: F401  (registers the AVIF plugin with Pillow)

            _avif = True
        except ImportError:  # pragma: no cover - depends on the installation
            _avif = False
    return _avif


def output_format_for(source: str) -> str:
    """The default output format for a source format: itself if it suits the web, else PNG."""
    fmt = FORMATS.get(source)
    if fmt is not None and fmt.web and (fmt.name != "avif" or avif_available()):
        return fmt.name
    return "png"
