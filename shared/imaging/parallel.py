"""Concurrency inside one worker: band-parallel filters and several chains at once.

Pillow's C kernels release the GIL, so threads give real parallelism for pixel work. Two uses:

* `map_bands`: a local filter (blur, unsharp mask, 3x3 kernels) runs on horizontal bands of one
  image at once. Each band is cut with `margin` extra rows above and below (at least the
  filter's reach), filtered, and only its own rows are kept, so the result is identical, byte
  for byte, to filtering the whole image in one call.
* `chain_pool().map(...)`: several chains on one decoded image (`pipeline.run_many`).

Two process-wide pools: chains may wait on bands, so bands get their own pool (band tasks never
wait on anything, so neither pool can deadlock).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

__all__ = ["chain_pool", "default_threads", "map_bands"]

# Below this many pixels the cost of splitting outweighs the gain.
MIN_PARALLEL_PIXELS = 1_000_000

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def default_threads() -> int:
    return max(
        1,
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    )


def _pool(kind: str) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(kind)
        if pool is None:
            pool = _pools[kind] = ThreadPoolExecutor(
                max_workers=max(2, default_threads() * 2), thread_name_prefix=f"imaging-{kind}"
            )
        return pool


def chain_pool() -> ThreadPoolExecutor:
    """The process-wide pool that runs whole chains side by side."""
    return _pool("chains")


def map_bands(
    image: Image.Image,
    fn: Callable[[Image.Image], Image.Image],
    *,
    margin: int,
    threads: int,
) -> Image.Image:
    """Apply a local filter `fn` to `image` in `threads` horizontal bands at once."""
    width, height = image.size
    bands = min(threads, max(1, height // max(4 * margin, 64)))
    if bands <= 1 or width * height < MIN_PARALLEL_PIXELS:
        return fn(image)
    step = -(-height // bands)
    spans = [(top, min(height, top + step)) for top in range(0, height, step)]

    def work(span: tuple[int, int]) -> Image.Image:
        top, bottom = span
        lo, hi = max(0, top - margin), min(height, bottom + margin)
        out = fn(image.crop((0, lo, width, hi)))
        return out.crop((0, top - lo, width, top - lo + bottom - top))

    parts = list(_pool("bands").map(work, spans))
    result = Image.new(parts[0].mode, (width, height))
    for (top, _), part in zip(spans, parts, strict=True):
        result.paste(part, (0, top))
    return result
