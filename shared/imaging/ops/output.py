"""Output operations: compress and convert.

They leave pixels alone and choose the encoding; the same `format` and `quality` keys are
accepted on every step (see `registry.OUTPUT_PARAMS`), so `{"op": "resize", "width": 800,
"format": "webp"}` and `{"op": "resize", "width": 800, "then": [{"op": "convert",
"format": "webp"}]}` mean the same.
"""

from __future__ import annotations

from PIL import Image

from shared.imaging.params import Int
from shared.imaging.registry import FORMAT_PARAM, QUALITY_PARAM, OpContext, Params, operation


def _unchanged(image: Image.Image, params: Params, ctx: OpContext) -> Image.Image:
    return image


operation(
    "compress",
    "Re-encode (by default in the source's format) at `quality`; with `max_bytes`, the best "
    "quality whose output fits in that many bytes.",
    QUALITY_PARAM,
    Int(
        "max_bytes", "Largest acceptable output, in bytes.", minimum=1024, maximum=200 * 1024 * 1024
    ),
    group="output",
    scale_invariant=True,
    luma_safe=True,
)(_unchanged)

operation(
    "convert",
    "Re-encode in another format.",
    FORMAT_PARAM.required_copy(),
    group="output",
    scale_invariant=True,
    luma_safe=True,
)(_unchanged)
