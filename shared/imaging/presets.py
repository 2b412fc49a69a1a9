"""Named operation lists. Each entry is written exactly as a client would write it in
`spec.operations`, and goes through the same validation (a test parses every preset)."""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, Any]] = {
    "web": {
        "description": "Responsive web images: large and medium WebP, and a square thumbnail.",
        "operations": [
            {"name": "large", "op": "resize", "width": 1920, "height": 1920, "format": "webp"},
            {"name": "medium", "op": "resize", "width": 960, "height": 960, "format": "webp"},
            {"name": "thumb", "op": "thumbnail", "size": 256, "crop": True, "format": "webp"},
        ],
    },
    "thumbnails": {
        "description": "Square thumbnails at 64, 128, 256 and 512 px.",
        "operations": [
            {"name": f"thumb-{size}", "op": "thumbnail", "size": size, "crop": True}
            for size in (64, 128, 256, 512)
        ],
    },
    "social": {
        "description": "Social-media crops: link preview 1200x630, square 1080, story 1080x1920.",
        "operations": [
            {
                "name": "og",
                "op": "resize",
                "width": 1200,
                "height": 630,
                "fit": "cover",
                "upscale": True,
                "format": "jpeg",
                "quality": 85,
            },
            {
                "name": "square",
                "op": "resize",
                "width": 1080,
                "height": 1080,
                "fit": "cover",
                "upscale": True,
                "format": "jpeg",
                "quality": 85,
            },
            {
                "name": "story",
                "op": "resize",
                "width": 1080,
                "height": 1920,
                "fit": "cover",
                "upscale": True,
                "format": "jpeg",
                "quality": 85,
            },
        ],
    },
    "avatar": {
        "description": "Profile pictures: 512 and 128 px squares, WebP.",
        "operations": [
            {"name": "avatar-512", "op": "thumbnail", "size": 512, "crop": True, "format": "webp"},
            {"name": "avatar-128", "op": "thumbnail", "size": 128, "crop": True, "format": "webp"},
        ],
    },
    "optimize": {
        "description": "Smaller files for the same picture: at most 2560 px, quality 75.",
        "operations": [
            {
                "name": "optimized",
                "op": "resize",
                "width": 2560,
                "height": 2560,
                "then": [{"op": "compress", "quality": 75}],
            },
        ],
    },
}
