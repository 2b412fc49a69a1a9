"""Helpers shared by operation modules."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from shared.imaging.params import Choice

__all__ = ["GRAVITIES", "gravity_param", "has_alpha", "on_colour"]

# Where a crop or a placed object sits, as (x, y) fractions of the free space.
GRAVITIES: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "north": (0.5, 0.0),
    "south": (0.5, 1.0),
    "east": (1.0, 0.5),
    "west": (0.0, 0.5),
    "northeast": (1.0, 0.0),
    "northwest": (0.0, 0.0),
    "southeast": (1.0, 1.0),
    "southwest": (0.0, 1.0),
}


def gravity_param(default: str = "center", description: str = "") -> Choice:
    return Choice(
        "gravity",
        description or "Which part of the image to keep.",
        default,
        choices=tuple(GRAVITIES),
    )


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("LA", "RGBA")


def on_colour(
    image: Image.Image,
    fn: Callable[[Image.Image, bool], Image.Image],
    consume: bool = False,
) -> Image.Image:
    """Apply `fn` to the colour channels only, leaving an alpha channel untouched.

    `fn(colour, owned)`: `owned` says whether `fn` may overwrite `colour` with its result
    (`consume` for an image without alpha; always for the copy made of one with alpha).
    """
    if not has_alpha(image):
        return fn(image, consume)
    alpha = image.getchannel("A")
    result = fn(image.convert(image.mode[:-1]), True)  # a fresh copy, safe to change in place
    if result.mode not in ("L", "RGB"):
        result = result.convert("RGB")
    result.putalpha(alpha)  # L -> LA, RGB -> RGBA
    return result
