#!/usr/bin/env python
"""Scratch measurements for bench/imaging.py's worst cases: techniques that would close the
gap to pyvips without changing pixelpipe's output, prototyped outside shared/imaging.

    .venv/bin/python bench/imaging_prototypes.py [EXPERIMENT ...] [--reps N]

Experiments (all by default): blocks, enhance, blur, rotate, crop, png, memory.
Each prints JSON lines `{"bench": "imaging-prototype", "experiment": ..., "variant": ...,
"ms": median, "identical": ...}`; `identical` compares the variant's output with the
current code's (encoded bytes, or pixels where the bytes cannot be compared).
Nothing here is used by the service; it only measures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PIL import Image, ImageEnhance, ImageFilter, ImageStat  # noqa: E402

from bench.imaging import IMAGES, make_photo, pixelpipe_chain  # noqa: E402

POOL = ThreadPoolExecutor(2)


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def emit(experiment: str, variant: str, ms: float | None, **extra: Any) -> None:
    record: dict[str, Any] = {
        "bench": "imaging-prototype",
        "experiment": experiment,
        "variant": variant,
    }
    if ms is not None:
        record["ms"] = round(ms, 1)
    name = variant.rsplit("/", 1)[-1]
    if ms is not None and name in CPU_MS:
        record["cpu_ms"] = round(CPU_MS[name], 1)
    record["load"] = round(os.getloadavg()[0], 1)
    record.update(extra)
    print(json.dumps(record), flush=True)


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Median wall time (ms) of `reps` calls, and the last result."""
    times, result = [], None
    for _ in range(reps):
        result = None
        gc.collect()
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


CPU_MS: dict[str, float] = {}  # variant -> median process CPU ms of the last interleaved()


def interleaved(variants: dict[str, Callable[[], Any]], reps: int) -> dict[str, tuple[float, Any]]:
    """Time several variants round-robin (ABAB...) so machine noise hits all of them.

    Wall time is what counts, but on a shared 2-core machine other people's work inflates it;
    the process CPU time (all threads) of each variant is kept in CPU_MS as a steadier
    measure of work done (it cannot show a parallel speed-up, only parallel overhead).
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, Any] = {}
    for _ in range(reps):
        for name, fn in variants.items():
            results[name] = None
            gc.collect()
            started, cpu_started = time.perf_counter(), time.process_time()
            results[name] = fn()
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    CPU_MS.clear()
    CPU_MS.update({name: statistics.median(c) * 1000 for name, c in cpu.items()})
    return {name: (statistics.median(t) * 1000, results[name]) for name, t in times.items()}


def source(name: str) -> bytes:
    width, height, fmt = IMAGES[name]
    out = io.BytesIO()
    im = make_photo(width, height)
    if fmt == "jpeg":
        im.save(out, "JPEG", quality=90)
    else:
        im.save(out, "PNG", compress_level=6)
    return out.getvalue()


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).tobytes()


# -- Allocation: Pillow's block cache and glibc's mmap threshold ---------------------------


@contextlib.contextmanager
def pillow_blocks(count: int) -> Iterator[None]:
    """Keep up to `count` freed 16 MB image blocks for reuse instead of returning them."""
    before = Image.core.get_blocks_max()
    Image.core.set_blocks_max(count)
    try:
        yield
    finally:
        Image.core.set_blocks_max(before)


BLOCK_OPS = ("resize", "crop", "flip", "invert", "brightness", "blur")


def _blocks_child(blocks: str, path: str, reps: str) -> None:
    """`run()` on 12 MP, threads=1, in a fresh process with Pillow's block cache set to
    `blocks`: median wall ms, CPU ms and minor page faults per run, per operation."""
    import resource

    from shared.imaging import run

    Image.core.set_blocks_max(int(blocks))
    data = Path(path).read_bytes()
    width, height, _ = IMAGES["12mp"]
    result = {}
    for op in BLOCK_OPS:
        chain = pixelpipe_chain(op, width, height)
        run(data, chain)  # warm
        walls, cpus, faults = [], [], []
        for _ in range(int(reps)):
            gc.collect()
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0, c0 = time.perf_counter(), time.process_time()
            run(data, chain)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        result[op] = [
            statistics.median(walls) * 1000,
            statistics.median(cpus) * 1000,
            statistics.median(faults),
        ]
    print(json.dumps(result))


def exp_blocks(reps: int) -> None:
    """Whole `run()` on 12 MP, threads=1: Pillow's default allocator vs its block cache.

    By default (blocks_max 0) every image's blocks go back to glibc, which returns them to
    the kernel, so each 12 MP pipeline first-touches ~130 MB of fresh pages (decoded source,
    output, encoder buffers): ~33,000 minor faults, ~2 us each on this Firecracker VM.
    Each variant runs in its own fresh process (the allocator's state is per process),
    alternated twice.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "12mp.jpg"
        path.write_bytes(source("12mp"))
        runs: dict[str, list[dict[str, list[float]]]] = {"0": [], "16": []}
        for _ in range(2):
            for blocks, results in runs.items():
                cmd = [sys.executable, __file__, "--_blocks-child", blocks, str(path), str(reps)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                results.append(json.loads(out.strip().splitlines()[-1]))
    for op in BLOCK_OPS:
        for blocks, results in runs.items():
            wall = statistics.median(r[op][0] for r in results)
            cpu = statistics.median(r[op][1] for r in results)
            faults = statistics.median(r[op][2] for r in results)
            emit(
                "blocks",
                f"12mp/{op}/pillow-blocks-{blocks}",
                wall,
                cpu_ms=round(cpu, 1),
                minor_faults=int(faults),
                threads=1,
            )


# -- Colour: ImageEnhance's full-size "degenerate" images vs one lookup table ---------------


def _blend_lut(constant: int, factor: float, mode: str) -> list[int]:
    """Image.blend(constant image, x, factor) for every x, computed by Pillow itself.

    A 256 x 64 ramp (long enough rows for any SIMD path) blended with the constant; blend is
    per pixel and position-independent, so this is exactly what the full-size blend does.
    """
    ramp = Image.frombytes("L", (256, 64), bytes(range(256)) * 64)
    flat = Image.new("L", ramp.size, constant)
    row = Image.blend(flat, ramp, factor).crop((0, 0, 256, 1)).tobytes()
    return list(row) * len(mode)


def brightness_lut(image: Image.Image, factor: float) -> Image.Image:
    return image.point(_blend_lut(0, factor, image.mode))


def contrast_lut(image: Image.Image, factor: float) -> Image.Image:
    # ImageEnhance.Contrast: the mean of the L image (a 12 MB convert, kept), then a blend
    # with a constant image: one table instead of two more full-size images.
    mean = int(ImageStat.Stat(image.convert("L")).mean[0] + 0.5)
    return image.point(_blend_lut(mean, factor, image.mode))


def exp_enhance(reps: int) -> None:
    im = Image.open(io.BytesIO(source("12mp")))
    im.load()
    for name, current, lut, factor in (
        ("brightness", lambda f: ImageEnhance.Brightness(im).enhance(f), brightness_lut, 1.2),
        ("contrast", lambda f: ImageEnhance.Contrast(im).enhance(f), contrast_lut, 1.3),
    ):
        got = interleaved(
            {
                "current": lambda current=current, factor=factor: current(factor),
                "point-lut": lambda lut=lut, factor=factor: lut(im, factor),
            },
            reps,
        )
        base = got["current"][1].tobytes()
        for variant, (ms, out) in got.items():
            emit("enhance", f"12mp/{name}/{variant}", ms, identical=out.tobytes() == base)


# -- Blur: band-parallel overheads ------------------------------------------------------------


def map_bands_lean(
    image: Image.Image,
    fn: Callable[[Image.Image], Image.Image],
    *,
    margin: int,
    threads: int,
    rows: int = 256,
) -> Image.Image:
    """map_bands with many short bands (scratch memory ~ threads x a short band, not half the
    image each) written into the result by the worker as each finishes (no list of parts)."""
    width, height = image.size
    count = max(threads, -(-height // rows))
    step = -(-height // count)
    result = Image.new(image.mode, image.size)

    def work(top: int) -> None:
        bottom = min(height, top + step)
        lo, hi = max(0, top - margin), min(height, bottom + margin)
        out = fn(image.crop((0, lo, width, hi)))
        result.paste(out.crop((0, top - lo, width, top - lo + bottom - top)), (0, top))

    if threads <= 1:
        for top in range(0, height, step):
            work(top)
    else:
        list(POOL.map(work, range(0, height, step)))
    return result


def exp_blur(reps: int) -> None:
    """The blur op alone on a decoded 12 MP image: Pillow's kernel vs map_bands' copies."""
    from shared.imaging.ops.filters import gaussian_reach
    from shared.imaging.parallel import map_bands

    im = Image.open(io.BytesIO(source("12mp")))
    im.load()
    kernel = ImageFilter.GaussianBlur(4)
    margin = gaussian_reach(4)
    base = im.filter(kernel).tobytes()

    def bands(threads: int) -> Image.Image:
        return map_bands(im, lambda b: b.filter(kernel), margin=margin, threads=threads)

    def separable() -> Image.Image:
        # Horizontal passes need no margin (rows are independent), vertical ones do.
        horizontal = ImageFilter.GaussianBlur((4, 0))
        vertical = ImageFilter.GaussianBlur((0, 4))
        half = map_bands(im, lambda b: b.filter(horizontal), margin=0, threads=2)
        return map_bands(half, lambda b: b.filter(vertical), margin=margin, threads=2)

    variants: dict[str, Callable[[], Image.Image]] = {
        "filter-1-thread": lambda: im.filter(kernel),
        "map_bands-2": lambda: bands(2),
        "separable-bands-2": separable,
        "lean-bands-1": lambda: map_bands_lean(
            im, lambda b: b.filter(kernel), margin=margin, threads=1
        ),
        "lean-bands-2": lambda: map_bands_lean(
            im, lambda b: b.filter(kernel), margin=margin, threads=2
        ),
    }
    got = interleaved(variants, reps)
    for name, (ms, out) in got.items():
        emit("blur", f"12mp/{name}", ms, identical=out.tobytes() == base)
    with pillow_blocks(32):
        got = interleaved(variants, reps)
    for name, (ms, out) in got.items():
        emit(
            "blur",
            f"12mp/{name}+pillow-blocks-32",
            ms,
            cpu_ms=round(CPU_MS[name], 1),
            identical=out.tobytes() == base,
        )
    # The kernel by itself, two halves at once (no copies): the best band-parallel can do.
    top, bottom = im.crop((0, 0, im.width, 1500)), im.crop((0, 1500, im.width, im.height))
    ms, _ = timed(lambda: list(POOL.map(lambda b: b.filter(kernel), (top, bottom))), reps)
    emit("blur", "12mp/kernel-on-two-halves-no-copies", ms)


# -- Rotate: band-parallel affine transform ----------------------------------------------


def rotate_matrix(size: tuple[int, int], angle: float) -> tuple[list[float], tuple[int, int]]:
    """Image.rotate(angle, expand=True)'s inverse matrix and canvas, as Pillow computes them."""
    w, h = size
    center = (w / 2, h / 2)
    rad = -math.radians(angle)
    matrix = [
        round(math.cos(rad), 15),
        round(math.sin(rad), 15),
        0.0,
        round(-math.sin(rad), 15),
        round(math.cos(rad), 15),
        0.0,
    ]

    def transform(x: float, y: float) -> tuple[float, float]:
        a, b, c, d, e, f = matrix
        return a * x + b * y + c, d * x + e * y + f

    matrix[2], matrix[5] = transform(-center[0], -center[1])
    matrix[2] += center[0]
    matrix[5] += center[1]
    xx, yy = zip(*(transform(x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))), strict=True)
    nw = math.ceil(max(xx)) - math.floor(min(xx))
    nh = math.ceil(max(yy)) - math.floor(min(yy))
    matrix[2], matrix[5] = transform(-(nw - w) / 2.0, -(nh - h) / 2.0)
    return matrix, (nw, nh)


def rotate_bands(image: Image.Image, angle: float, fill: Any, threads: int) -> Image.Image:
    """Pillow's rotate(expand=True, BICUBIC) computed as `threads` horizontal output bands.

    Each band is the same affine transform with the translation moved to the band's top row.
    For L and RGB the bands are written straight into one canvas (the core `transform` takes
    an output box; coordinates are relative to its corner), so there are no parts to paste;
    other modes (Pillow premultiplies alpha around the transform) go through
    Image.transform per band and a paste.
    """
    matrix, (nw, nh) = rotate_matrix(image.size, angle)
    step = -(-nh // threads)
    a, b, c, d, e, f = matrix
    result = Image.new(image.mode, (nw, nh), fill)
    image.load()

    def band(top: int) -> None:
        bottom = min(nh, top + step)
        shifted = (a, b, c + b * top, d, e, f + e * top)
        if image.mode in ("L", "RGB"):
            result.im.transform(
                (0, top, nw, bottom),
                image.im,
                Image.Transform.AFFINE,
                shifted,
                Image.Resampling.BICUBIC,
                0,  # keep the canvas (already the fill colour) outside the source
            )
            return
        part = image.transform(
            (nw, bottom - top),
            Image.Transform.AFFINE,
            shifted,
            Image.Resampling.BICUBIC,
            fillcolor=fill,
        )
        result.paste(part, (0, top))

    list(POOL.map(band, range(0, nh, step)))
    return result


def exp_rotate(reps: int) -> None:
    white = (255, 255, 255)
    for name in ("12mp", "1mp"):
        im = Image.open(io.BytesIO(source(name)))
        im.load()

        def current(im: Image.Image = im) -> Image.Image:
            return im.rotate(-30, Image.Resampling.BICUBIC, expand=True, fillcolor=white)

        got = interleaved(
            {
                "current": current,
                "bands-1": lambda im=im: rotate_bands(im, -30, white, 1),
                "bands-2": lambda im=im: rotate_bands(im, -30, white, 2),
            },
            reps,
        )
        base = got["current"][1].tobytes()
        for variant, (ms, out) in got.items():
            same = out.tobytes() == base
            emit("rotate", f"{name}/{variant}", ms, identical=same, size=list(out.size))


# -- Crop: decode only the rows the crop needs ---------------------------------------------


def exp_crop(reps: int) -> None:
    """Center-half crop of the 12 MP JPEG: full decode vs stopping after the crop's last row.

    pyvips (sequential access) stops reading the JPEG once the crop's rows are out; Pillow can
    be told to decode only the first `bottom` rows by shortening the tile.
    """
    data = source("12mp")
    width, height, _ = IMAGES["12mp"]
    box = (width // 4, height // 4, width // 4 + width // 2, height // 4 + height // 2)

    def full() -> bytes:
        im = Image.open(io.BytesIO(data))
        im.load()
        return im.crop(box).tobytes()

    def top_rows() -> bytes:
        im = Image.open(io.BytesIO(data))
        bottom = box[3]
        tile = im.tile[0]
        im.tile = [tile._replace(extents=(0, 0, width, bottom))]
        im._size = (width, bottom)
        with contextlib.suppress(OSError):  # libjpeg: "too few scanlines" at finish
            im.load()
        return im.crop(box).tobytes()

    got = interleaved({"full-decode": full, "decode-to-bottom": top_rows}, reps)
    base = got["full-decode"][1]
    for variant, (ms, out) in got.items():
        emit("crop", f"12mp/{variant}", ms, identical=out == base)


# -- PNG: where the time goes, and what zlib-ng would do ------------------------------------


def _idat(png: bytes) -> bytes:
    out, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            out.append(png[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return b"".join(out)


def _deflate(module: Any, data: bytes) -> bytes:
    # Pillow's PNG encoder: level 6, 32 KB window, memLevel 9, Z_FILTERED (ZipEncode.c).
    packer = module.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_FILTERED)
    return packer.compress(data) + packer.flush()


def exp_png(reps: int) -> None:
    """png2k: Pillow's PNG save vs the deflate inside it, with the system zlib and zlib-ng.

    The filtered scanlines are taken from Pillow's own output (IDAT inflated), then deflated
    again with Pillow's settings, so `save - deflate` is Pillow's filter selection and
    framing. zlib-ng is measured through the `zlib_ng` module if it is importable (e.g.
    `pip install --target DIR zlib-ng`, DIR on PYTHONPATH); Pillow would get the same by
    being built against zlib-ng in zlib-compat mode (what the pyvips-binary wheel bundles,
    and Pillow's own wheels too).
    """
    try:
        import zlib_ng.zlib_ng as zng  # type: ignore[import-not-found]
    except ImportError:
        zng = None
        log("[png] zlib_ng not importable: skipping the zlib-ng variants")
    data = source("png2k")
    im = Image.open(io.BytesIO(data))
    im.load()
    ms, _ = timed(lambda: Image.open(io.BytesIO(data)).load(), reps)
    emit("png", "png2k/pillow-decode", ms)
    sepia_matrix = (0.393, 0.769, 0.189, 0, 0.349, 0.686, 0.168, 0, 0.272, 0.534, 0.131, 0)
    for name, image in (("photo", im), ("sepia", im.convert("RGB", sepia_matrix))):
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=6)
        png = out.getvalue()
        filtered = zlib.decompress(_idat(png))
        variants: dict[str, Callable[[], Any]] = {
            "pillow-save": lambda image=image: image.save(io.BytesIO(), "PNG", compress_level=6),
            "deflate-zlib": lambda filtered=filtered: _deflate(zlib, filtered),
        }
        if zng is not None:
            variants["deflate-zlib-ng"] = lambda filtered=filtered: _deflate(zng, filtered)
        got = interleaved(variants, reps)
        for variant, (ms, _) in got.items():
            emit("png", f"png2k-{name}/{variant}", ms, png_bytes=len(png))
        if zng is not None:
            packed = _deflate(zng, filtered)
            emit("png", f"png2k-{name}/zlib-ng-idat-bytes", None, idat_bytes=len(packed))
            ms, _ = timed(lambda packed=packed: zng.decompress(packed), reps)
            emit("png", f"png2k-{name}/inflate-zlib-ng", ms)
        ms, _ = timed(lambda png=png: zlib.decompress(_idat(png)), reps)
        emit("png", f"png2k-{name}/inflate-zlib-{zlib.ZLIB_RUNTIME_VERSION}", ms)


# -- Memory: keeping the decoded source alive through encode -----------------------------


def _memory_child(op: str, variant: str, path: str) -> None:
    from shared.imaging import Limits, run
    from shared.imaging.encode import encode
    from shared.imaging.pipeline import _context, apply, decode_for

    data = Path(path).read_bytes()
    width, height, _ = IMAGES["12mp"]
    chain = pixelpipe_chain(op, width, height)
    warm = io.BytesIO()
    make_photo(96, 64).save(warm, "JPEG")
    run(warm.getvalue(), pixelpipe_chain(op, 96, 64), threads=2)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    base = _kb("VmRSS")
    if variant == "current":
        run(data, chain, threads=2)
    else:  # drop the source frames as soon as the chain has produced its output
        if variant == "release-source+lean-bands":
            from shared.imaging.ops import filters

            filters.map_bands = map_bands_lean  # type: ignore[assignment]
        limits = Limits()
        picture, _ = decode_for(data, [chain], limits)
        out = apply(picture, chain, _context(limits, 2, None))
        del picture
        encode(out, chain.output_format("jpeg"), chain.quality, chain.max_bytes, threads=2)
    print(json.dumps({"peak_mb": round((_kb("VmHWM") - base) * 1024 / 1e6, 1)}))


def _kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def exp_memory(reps: int) -> None:
    import tempfile

    del reps
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "12mp.jpg"
        path.write_bytes(source("12mp"))
        for op in ("flip", "invert", "blur"):
            variants = ["current", "release-source"]
            if op == "blur":
                variants.append("release-source+lean-bands")
            for variant in variants:
                cmd = [sys.executable, __file__, "--_memory-child", op, variant, str(path)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                peak = json.loads(out.strip().splitlines()[-1])["peak_mb"]
                emit("memory", f"12mp/{op}/{variant}", None, peak_mb=peak, ratio=peak / 36.0)


# -- All of the above at once, patched into shared.imaging (for bench/imaging.py --prototypes)


PROTOTYPES = (
    "pillow-blocks-16 (PROTOTYPE_PILLOW_BLOCKS)",
    "brightness/contrast as one point() table",
    "band-parallel rotate",
    "lean map_bands (short bands, pasted by the workers)",
    "run() drops the decoded source before encoding",
)


def apply_prototypes() -> None:
    """Monkeypatch the byte-identical techniques measured here into this process's
    shared.imaging (nothing on disk changes). zlib-ng and crop-on-load need C-level changes
    and are not included."""
    import dataclasses

    from shared import imaging
    from shared.imaging import pipeline
    from shared.imaging.ops import colour, filters, geometry
    from shared.imaging.ops.common import on_colour
    from shared.imaging.registry import REGISTRY

    Image.core.set_blocks_max(int(os.environ.get("PROTOTYPE_PILLOW_BLOCKS", "16")))

    def brightness(image: Image.Image, params: Any, ctx: Any) -> Image.Image:
        return on_colour(image, lambda im: brightness_lut(im, params["factor"]))

    def contrast(image: Image.Image, params: Any, ctx: Any) -> Image.Image:
        return on_colour(image, lambda im: contrast_lut(im, params["factor"]))

    original_rotate = REGISTRY["rotate"].apply

    def rotate(image: Image.Image, params: Any, ctx: Any) -> Image.Image:
        angle = params["angle"] % 360
        if ctx.threads <= 1 or angle == 0 or (float(angle).is_integer() and angle % 90 == 0):
            return original_rotate(image, params, ctx)
        ctx.limits.check_output(*geometry._rotated_size(params, image.size))
        image, fill = geometry._with_background(image, params.get("background"))
        return rotate_bands(image, -angle, fill, ctx.threads)

    for name, fn in (("brightness", brightness), ("contrast", contrast), ("rotate", rotate)):
        REGISTRY[name] = dataclasses.replace(REGISTRY[name], apply=fn)

    def lean(image: Image.Image, fn: Any, *, margin: int, threads: int) -> Image.Image:
        if threads <= 1 or image.width * image.height < 1_000_000:
            return fn(image)
        return map_bands_lean(image, fn, margin=margin, threads=threads)

    filters.map_bands = lean  # type: ignore[assignment]
    del colour

    def run(
        data: bytes,
        chain: Any,
        *,
        limits: Any = None,
        threads: int = 1,
        timeout: float | None = None,
    ) -> Any:
        limits = limits or pipeline.Limits()
        ctx = pipeline._context(limits, threads, timeout)
        picture, _ = pipeline.decode_for(data, [chain], limits)
        source_format = picture.source_format
        out = pipeline.apply(picture, chain, ctx)
        del picture  # the decoded source is no longer needed: free it before encoding
        ctx.check_deadline()
        return pipeline.encode(
            out,
            chain.output_format(source_format),
            chain.quality,
            chain.max_bytes,
            threads=ctx.threads,
        )

    pipeline.run = run  # type: ignore[assignment]
    imaging.run = run  # type: ignore[assignment]


EXPERIMENTS = {
    "blocks": exp_blocks,
    "enhance": exp_enhance,
    "blur": exp_blur,
    "rotate": exp_rotate,
    "crop": exp_crop,
    "png": exp_png,
    "memory": exp_memory,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="*", help=", ".join(EXPERIMENTS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--_memory-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--_blocks-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._memory_child:
        _memory_child(*args._memory_child)
        return 0
    if args._blocks_child:
        _blocks_child(*args._blocks_child)
        return 0
    unknown = set(args.experiments) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiments: {', '.join(sorted(unknown))}")
    for name in args.experiments or EXPERIMENTS:
        started = time.perf_counter()
        EXPERIMENTS[name](args.reps)
        log(f"[prototype] {name} done ({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
