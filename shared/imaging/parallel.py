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

__all__ = ["band_pool", "chain_pool", "default_threads", "map_bands"]

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
            # Bands are pure CPU work: one thread per core. Chains also wait on I/O-free work
            # but may block on bands, so they get more.
            size = default_threads() if kind == "bands" else max(2, default_threads() * 2)
            pool = _pools[kind] = ThreadPoolExecutor(
                max_workers=size, thread_name_prefix=f"imaging-{kind}"
            )
        return pool


def band_pool() -> ThreadPoolExecutor:
    """The process-wide pool for bands of one image (never waits on anything)."""
    return _pool("bands")


def chain_pool() -> ThreadPoolExecutor:
    """The process-wide pool that runs whole chains side by side."""
    return _pool("chains")


def map_bands(
    image: Image.Image,
    fn: Callable[[Image.Image], Image.Image],
    *,
    margin: int,
    threads: int,
    rows: int = 256,
) -> Image.Image:
    """Apply a local filter `fn` to `image` in short horizontal bands on `threads` threads.

    Bands of about `rows` rows (at least one per thread) keep the scratch memory to a few
    short bands instead of half an image each; each worker writes its band straight into
    the result, so no list of parts is gathered and pasted afterwards.
    """
    width, height = image.size
    if threads <= 1 or width * height < MIN_PARALLEL_PIXELS:
        return fn(image)
    count = max(threads, -(-height // rows))
    step = -(-height // count)
    result = Image.new(image.mode, image.size)

    def work(top: int) -> None:
        bottom = min(height, top + step)
        lo, hi = max(0, top - margin), min(height, bottom + margin)
        out = fn(image.crop((0, lo, width, hi)))
        result.paste(out.crop((0, top - lo, width, top - lo + bottom - top)), (0, top))

    list(band_pool().map(work, range(0, height, step)))
    return result
