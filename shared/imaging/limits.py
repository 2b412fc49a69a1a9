"""Every limit on an input image, in one value object, checked in one place before decoding.

The defaults are SECURITY.md's: 40 MP per frame, 100 MP across frames, 100 frames, a longest
side of 30 000 px, and the formats on the allow-list. `shared.config.Settings.limits()` builds
the production object from settings; tests build their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.errors import ImageCorrupt, ImageTooLarge, PayloadTooLarge

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_frame_pixels: int = 40_000_000
    max_total_pixels: int = 100_000_000
    max_frames: int = 100
    max_dimension: int = 30_000
    formats: frozenset[str] = field(
        default_factory=lambda: frozenset({"jpeg", "png", "webp", "gif", "avif"})
    )

    def check_bytes(self, size: int) -> None:
        if size > self.max_bytes:
            raise PayloadTooLarge(
                f"The image is {size} bytes; the limit is {self.max_bytes} bytes.",
                limit=self.max_bytes,
            )

    def check_frame(self, width: int, height: int) -> None:
        """Check one frame's declared size (from the header, before any pixel is decoded)."""
        if width <= 0 or height <= 0:
            raise ImageCorrupt(f"The image declares an empty size ({width}x{height}).")
        if max(width, height) > self.max_dimension:
            raise ImageTooLarge(
                f"The image is {width}x{height}; no side may exceed {self.max_dimension} px.",
                limit=self.max_dimension,
            )
        if width * height > self.max_frame_pixels:
            raise ImageTooLarge(
                f"The image is {width}x{height} ({width * height} pixels); "
                f"the limit is {self.max_frame_pixels} pixels.",
                limit=self.max_frame_pixels,
            )

    def check_frames(self, width: int, height: int, frames: int) -> None:
        if frames > self.max_frames:
            raise ImageTooLarge(
                f"The image has {frames} frames; the limit is {self.max_frames}.",
                limit=self.max_frames,
            )
        if width * height * frames > self.max_total_pixels:
            raise ImageTooLarge(
                f"The image has {frames} frames of {width}x{height}; the limit is "
                f"{self.max_total_pixels} pixels across all frames.",
                limit=self.max_total_pixels,
            )

    def check_output(self, width: int, height: int) -> None:
        """Outputs obey the same per-frame caps as inputs (a resize cannot make a bomb)."""
        if max(width, height) > self.max_dimension or width * height > self.max_frame_pixels:
            from shared.errors import OperationFailed

            raise OperationFailed(
                f"The result would be {width}x{height}, over the size limit "
                f"({self.max_dimension} px a side, {self.max_frame_pixels} pixels)."
            )
