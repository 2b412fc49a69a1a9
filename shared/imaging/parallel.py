"""Concurrency inside one worker: band-parallel filters and several chains at once.

Pillow's C kernels release the GIL, so threads give real parallelism for pixel work. Two uses:

* `map_bands`: a local filter (blur, unsharp mask, 3x3 kernels) runs on horizontal bands of one
  image at once. Each band is cut with `margin` extra rows above and below (at least the
  filter's reach), filtered, and only its own rows are kept, so the result is identical, byte
  for byte, to filtering the whole image in one call.
* `chain_pool().map(...)`: several chains on one decoded image (`pipeline.run_many`).

When a step owns its input (`OpContext.consume`: nothing else will read that frame again),
the helpers write their result back into the input instead of allocating a second full-size
image (12 MP RGB is 48 MB in Pillow), keeping the peak of a 12 MP operation near one image:

* `map_pixels`: a per-pixel function (LUTs, colour matrices, blends), band by band;
* `map_bands(..., inplace=True)`: a local filter, band by band with a one-band lag (a band's
  result is written back only once no band still to be cut reads its rows);
* `mirror_rows`: flips and half turns, swapping mirrored pairs of bands.

Each gives the same bytes as the whole-image call (tested).

Two process-wide pools: chains may wait on bands, so bands get their own pool (band tasks never
wait on anything, so neither pool can deadlock).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

__all__ = [
    "band_pool",
    "chain_pool",
    "default_threads",
    "map_bands",
    "map_pixels",
    "mirror_rows",
    "pixel_band_rows",
    "run_bands",
    "scratch",
    "worth_in_place",
]

# Below this many pixels the cost of splitting outweighs the gain.
MIN_PARALLEL_PIXELS = 1_000_000
# Below this many pixels a second copy of the image costs little: in-place work is skipped.
MIN_INPLACE_PIXELS = 1_000_000
# Rows per band for per-pixel work in place: about 1 MB of RGB, so a band stays in cache
# between the crop, the function and the paste.
PIXEL_BAND_BYTES = 1 << 20

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


def worth_in_place(image: Image.Image, inplace: bool) -> bool:
    """Whether to write into `image` (the caller owns it) rather than into a new image: only
    for images large enough that a second copy matters."""
    return inplace and image.width * image.height >= MIN_INPLACE_PIXELS


def pixel_band_rows(width: int) -> int:
    """Rows of a band of per-pixel work in place: about `PIXEL_BAND_BYTES` of pixels."""
    return max(8, PIXEL_BAND_BYTES // (4 * width))


@contextlib.contextmanager
def scratch() -> Iterator[None]:
    """Leave Pillow's block cache as it was found: band-sized temporaries made inside would
    otherwise stay cached (a few blocks of a few MB) through the encode that usually follows,
    on top of the image and the encoder's buffers."""
    cached = Image.core.get_stats()["blocks_cached"]  # type: ignore[attr-defined]
    try:
        yield
    finally:
        Image.core.clear_cache(cached)  # type: ignore[attr-defined]


def run_bands(fn: Callable[[int], None], tops: Iterable[int], threads: int) -> None:
    """`fn(top)` for every band, on the band pool when `threads` > 1 (else in order, here)."""
    if threads > 1:
        list(band_pool().map(fn, tops))
    else:
        for top in tops:
            fn(top)


def map_pixels(
    image: Image.Image,
    fn: Callable[[Image.Image], Image.Image],
    *,
    inplace: bool,
    threads: int,
) -> Image.Image:
    """Apply a per-pixel `fn` (each output pixel depends only on the same input pixel, and
    the output has the input's mode and size) to `image`.

    With `inplace` (the caller owns `image`) and a large image, `fn` runs on short bands
    whose results are pasted back into `image` (on `threads` threads), so no second
    full-size image is allocated; `image` itself is returned. Otherwise `fn(image)`.
    """
    if not worth_in_place(image, inplace):
        return fn(image)
    width, height = image.size
    step = pixel_band_rows(width)
    first = fn(image.crop((0, 0, width, min(height, step))))
    if first.mode != image.mode or first.width != width:
        return fn(image)  # not a per-pixel function of this mode: the plain call
    image.paste(first, (0, 0))
    del first

    def work(top: int) -> None:
        box = (0, top, width, min(height, top + step))
        image.paste(fn(image.crop(box)), box[:2])

    run_bands(work, range(step, height, step), threads)
    return image


def mirror_rows(
    image: Image.Image, method: Image.Transpose, *, inplace: bool, threads: int
) -> Image.Image:
    """`image.transpose(method)` for the flips and the half turn (FLIP_LEFT_RIGHT,
    FLIP_TOP_BOTTOM, ROTATE_180), written back into `image` when `inplace` allows.

    A left-right flip keeps every row in place; the other two move row y to height-1-y, so
    bands are taken in mirrored pairs, each transposed and written where the other was.
    """
    if not worth_in_place(image, inplace):
        return image.transpose(method)
    width, height = image.size
    step = pixel_band_rows(width)
    if method == Image.Transpose.FLIP_LEFT_RIGHT:

        def flip(top: int) -> None:
            box = (0, top, width, min(height, top + step))
            image.paste(image.crop(box).transpose(method), box[:2])

        run_bands(flip, range(0, height, step), threads)
        return image
    if method not in (Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180):
        raise ValueError(f"not a mirror: {method!r}")
    half = (height + 1) // 2  # the middle row of an odd height is its own mirror

    def swap(top: int) -> None:
        bottom = min(half, top + step)
        if height - bottom < bottom:  # the middle band and its mirror overlap: one piece
            box = (0, top, width, height - top)
            image.paste(image.crop(box).transpose(method), box[:2])
            return
        upper = image.crop((0, top, width, bottom)).transpose(method)
        lower_box = (0, height - bottom, width, height - top)
        image.paste(image.crop(lower_box).transpose(method), (0, top))
        image.paste(upper, lower_box[:2])

    run_bands(swap, range(0, half, step), threads)
    return image


def map_bands(
    image: Image.Image,
    fn: Callable[[Image.Image], Image.Image],
    *,
    margin: int,
    threads: int,
    rows: int = 256,
    inplace: bool = False,
) -> Image.Image:
    """Apply a local filter `fn` to `image` in short horizontal bands on `threads` threads.

    Bands of about `rows` rows (at least one per thread) keep the scratch memory to a few
    short bands instead of half an image each; each worker writes its band straight into
    the result, so no list of parts is gathered and pasted afterwards.

    With `inplace` (the caller owns `image`), the results go back into `image` itself
    (see `_map_bands_inplace`), also on one thread.
    """
    width, height = image.size
    if worth_in_place(image, inplace):
        with scratch():
            return _map_bands_inplace(image, fn, margin=margin, threads=threads, rows=rows)
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


def _map_bands_inplace(
    image: Image.Image,
    fn: Callable[[Image.Image], Image.Image],
    *,
    margin: int,
    threads: int,
    rows: int,
) -> Image.Image:
    """`map_bands` writing each band's result back into `image`.

    This thread cuts the bands (with their margins) in order and hands them to the pool; a
    band's result is pasted back only once every band that reads its rows has been cut
    (with bands at least `margin` rows high, the next one), so each band is filtered from
    the original pixels. `threads` bands are filtered at a time and one more waits, so only
    a few bands of scratch exist at once.
    """
    width, height = image.size
    step = max(rows, margin, 1)
    tops = list(range(0, height, step))
    pool = band_pool() if threads > 1 else None
    pending: deque[tuple[int, Future[Image.Image]]] = deque()

    def work(band: Image.Image, own: tuple[int, int, int, int]) -> Image.Image:
        return fn(band).crop(own)

    def submit(band: Image.Image, own: tuple[int, int, int, int]) -> Future[Image.Image]:
        if pool is not None:
            return pool.submit(work, band, own)
        done: Future[Image.Image] = Future()
        done.set_result(work(band, own))
        return done

    for index, top in enumerate(tops):
        bottom = min(height, top + step)
        lo, hi = max(0, top - margin), min(height, bottom + margin)
        band = image.crop((0, lo, width, hi))
        pending.append((top, submit(band, (0, top - lo, width, bottom - lo))))
        del band
        # The next band to be cut starts at `cut`: rows above it are read by nobody any more.
        cut = max(0, tops[index + 1] - margin) if index + 1 < len(tops) else height
        while pending:
            first_top, future = pending[0]
            if min(height, first_top + step) > cut:
                break
            if len(pending) <= threads and not future.done():
                break
            pending.popleft()
            image.paste(future.result(), (0, first_top))
            del future
    while pending:
        first_top, future = pending.popleft()
        image.paste(future.result(), (0, first_top))
    return image
