#!/usr/bin/env python
"""pixelpipe's imaging core against pyvips, the same decode-op-encode work, interleaved.

    .venv/bin/python bench/imaging.py [--quick] [--ops a,b] [--images 12mp,1mp,png2k]
                                      [--modes throughput,latency] [--rounds N] [--memory]
                                      [--verify] [--breakdown]

Every registered operation runs on three images made here (a photo-like 12 MP JPEG, a 1 MP
JPEG and a 2K PNG), once through `shared.imaging.run` and once through the idiomatic pyvips
equivalent (same output format and encoder settings), in two modes at the same core budget:

* `throughput`: two worker processes run images back to back at the same time, each library
  single-threaded per image (pixelpipe `threads=1`, libvips concurrency 1): a busy worker.
* `latency`: one image at a time in one process, each library free to use both cores
  (pixelpipe `threads=2`, libvips concurrency 2).

Each round visits every case once (round-major, so a burst of machine noise spoils one round
of many cases rather than every round of one); within a case the libraries take turns
(AB, BA, AB, ...). A measurement runs images for a time window (at least one per stream) and
the medians across rounds are reported; the load average is logged after each round. libvips'
operation cache is off, so every repeat is real work. The full run verifies once that both
libraries produce the same format and dimensions (and logs the mean pixel difference).

stdout carries only JSON lines (one per case, a summary, and with `--memory` one per 12 MP
operation with its peak RSS); progress and warnings go to stderr. `--breakdown` instead
prints decode / op / encode times for both libraries (see `Worker.breakdown`).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import multiprocessing as mp
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# -- What runs ----------------------------------------------------------------------------

# name -> (width, height, source format)
IMAGES: dict[str, tuple[int, int, str]] = {
    "12mp": (4000, 3000, "jpeg"),
    "1mp": (1152, 864, "jpeg"),
    "png2k": (2048, 1536, "png"),
}
WATERMARK_TEXT = "© pixelpipe 2026"


def op_params(op: str, width: int, height: int) -> dict[str, Any]:
    """Representative parameters for every registered operation on a width x height image."""
    table: dict[str, dict[str, Any]] = {
        "resize": {"width": 1024},
        "thumbnail": {"size": 256},
        "crop": {"x": width // 4, "y": height // 4, "width": width // 2, "height": height // 2},
        "rotate": {"angle": 30},
        "flip": {"direction": "horizontal"},
        "grayscale": {},
        "sepia": {},
        "invert": {},
        "auto_contrast": {},
        "equalize": {},
        "blur": {"radius": 4},
        "sharpen": {},  # radius 2, percent 150, threshold 3
        "brightness": {"factor": 1.2},
        "contrast": {"factor": 1.3},
        "saturation": {"factor": 1.5},
        "posterize": {"bits": 4},
        "pixelate": {"size": 10},
        "edge_enhance": {},
        "emboss": {},
        "watermark": {"text": WATERMARK_TEXT},
        "compress": {"quality": 60},
        "convert": {"format": "webp"},
    }
    return {"op": op, **table[op]}


OPS = (
    "resize",
    "thumbnail",
    "crop",
    "rotate",
    "flip",
    "grayscale",
    "sepia",
    "invert",
    "auto_contrast",
    "equalize",
    "blur",
    "sharpen",
    "brightness",
    "contrast",
    "saturation",
    "posterize",
    "pixelate",
    "edge_enhance",
    "emboss",
    "watermark",
    "compress",
    "convert",
)
# --quick (without --ops) runs every operation on the 1 MP image and these on the others.
QUICK_OPS = {
    "12mp": ("resize", "thumbnail", "blur", "sharpen", "grayscale"),
    "png2k": ("resize", "blur", "convert"),
}
# A case whose rounds take longer than this many seconds stops after three rounds.
SLOW_ROUND = 2.5
MODES = ("throughput", "latency")
LIBS = ("pixelpipe", "pyvips")
MB = 1e6


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


# -- Test images (made once, in the parent; generation is never timed) ----------------------


def make_photo(width: int, height: int) -> Any:
    """Photo-like RGB content: the fixture's gradients and shapes, plus sensor-like grain.

    The fixture alone is very smooth (a 12 MP q90 JPEG of it is ~1 MB); real 12 MP photos are
    2-5 MB, and entropy decoding/coding cost scales with that, so fine noise is added back.
    """
    from PIL import Image

    from tests.fixtures.images import photo

    base = photo(width, height)
    grain = Image.effect_noise((width, height), 40).convert("RGB")
    blotch = Image.merge(
        "RGB",
        [
            Image.effect_noise((max(1, width // 2), max(1, height // 2)), 60).resize(
                (width, height), Image.Resampling.BILINEAR
            )
            for _ in range(3)
        ],
    )
    return Image.blend(Image.blend(base, grain, 0.10), blotch, 0.10)


def make_images(names: list[str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The benchmark images, and a tiny one of each format for warming up."""
    images: dict[str, bytes] = {}
    for name in names:
        width, height, fmt = IMAGES[name]
        started = time.perf_counter()
        im = make_photo(width, height)
        out = io.BytesIO()
        if fmt == "jpeg":
            im.save(out, "JPEG", quality=90)  # baseline 4:2:0, as cameras write them
        else:
            im.save(out, "PNG", compress_level=6)
        images[name] = out.getvalue()
        log(
            f"[bench] made {name}: {width}x{height} {fmt}, {len(images[name]) / MB:.2f} MB "
            f"({time.perf_counter() - started:.1f}s)"
        )
    tiny = make_photo(96, 64)
    warm: dict[str, bytes] = {}
    for fmt, pil in (("jpeg", "JPEG"), ("png", "PNG")):
        out = io.BytesIO()
        tiny.save(out, pil)
        warm[fmt] = out.getvalue()
    return images, warm


# -- The pyvips side ------------------------------------------------------------------------


@dataclass
class VipsCase:
    """One pyvips equivalent, split so the breakdown can time each part on its own."""

    load: Callable[[bytes], Any]
    op: Callable[[Any], Any]
    save: Callable[[Any], bytes]
    note: str = ""

    def run(self, data: bytes) -> tuple[bytes, int, int]:
        out = self.op(self.load(data))
        return self.save(out), out.width, out.height


def _pyvips() -> Any:
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    return pyvips


LUMA = [0.299, 0.587, 0.114]  # ITU-R 601, what Pillow's convert("L") uses
SEPIA = [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]]


def vips_saver(fmt: str, quality: int | None = None) -> Callable[[Any], bytes]:
    """pixelpipe's encoder defaults, in pyvips terms; every piece of metadata dropped."""
    pyvips = _pyvips()
    none = pyvips.enums.ForeignKeep.NONE
    if fmt == "jpeg":
        q = quality or 85
        return lambda im: im.jpegsave_buffer(Q=q, interlace=True, optimize_coding=True, keep=none)
    if fmt == "webp":
        q = quality or 80
        return lambda im: im.webpsave_buffer(Q=q, effort=4, keep=none)
    if fmt == "png":
        # Pillow picks a row filter adaptively (like libpng's "all"); libvips defaults to none.
        filters = pyvips.enums.ForeignPngFilter.ALL
        if quality is not None and quality < 100:  # pixelpipe: quality < 100 -> palette
            return lambda im: im.pngsave_buffer(
                compression=6, palette=True, filter=filters, keep=none
            )
        return lambda im: im.pngsave_buffer(compression=6, filter=filters, keep=none)
    raise ValueError(fmt)


def _pillow_equalize_lut(hist: list[int]) -> list[int]:
    """ImageOps.equalize's lookup table for one band's histogram."""
    used = [count for count in hist if count]
    if len(used) <= 1:
        return list(range(256))
    step = (sum(used) - used[-1]) // 255
    if not step:
        return list(range(256))
    lut, n = [], step // 2
    for count in hist:
        lut.append(n // step)
        n += count
    return lut


def _pillow_autocontrast_lut(hist: list[int]) -> list[int]:
    """ImageOps.autocontrast's lookup table for one band (cutoff 0)."""
    lo = next((i for i in range(256) if hist[i]), 0)
    hi = next((i for i in range(255, -1, -1) if hist[i]), 255)
    if hi <= lo:
        return list(range(256))
    scale = 255.0 / (hi - lo)
    return [min(255, max(0, int(i * scale - lo * scale))) for i in range(256)]


def _per_band_lut(pyvips: Any, im: Any, make: Callable[[list[int]], list[int]]) -> Any:
    """Histogram each band (one pass), build Pillow's table in Python, map (second pass)."""
    hist = im.hist_find()  # 256 x 1, one band per input band
    luts = [make([int(v) for v in hist[b].tolist()[0]]) for b in range(im.bands)]
    planes = [pyvips.Image.new_from_array([lut]).cast("uchar") for lut in luts]  # 256 x 1
    lut = planes[0].bandjoin(planes[1:]) if len(planes) > 1 else planes[0]
    return im.maplut(lut).copy(interpretation=im.interpretation)  # maplut takes the LUT's


def _watermark_patch(pyvips: Any, text: str, size: int, opacity: float) -> Any:
    """White text with a thin dark outline, alpha = opacity, as an RGBA patch.

    Differences from pixelpipe, which cannot be avoided: libvips renders through Pango with a
    system sans font (pixelpipe: FreeType with Pillow's bundled Aileron), and the outline is a
    morphological dilation of the glyph mask rather than FreeType's stroker. The patch is a
    few hundred pixels wide, so either way it costs almost nothing next to the image.
    """
    stroke = max(1, size // 18)
    mask = pyvips.Image.text(text, font=f"sans {size}px", dpi=72)
    mask = mask.embed(stroke, stroke, mask.width + 2 * stroke, mask.height + 2 * stroke)
    reach = 2 * stroke + 1
    dilated = mask.rank(reach, reach, reach * reach - 1)
    alpha = round(255 * opacity)
    fill_a = mask * (alpha / 255)
    outline_a = (dilated - mask) * (alpha * 0.6 / 255)
    patch_alpha = (fill_a + outline_a).cast("uchar")
    rgb = (mask > 127).ifthenelse([255, 255, 255], [0, 0, 0])
    return rgb.bandjoin(patch_alpha).copy(interpretation="srgb")


def vips_case(op: str, fmt: str, width: int, height: int) -> VipsCase:
    """The idiomatic pyvips way to do `op` on a `fmt` source of width x height.

    Sources are opened with `access="sequential"` (streaming, like `thumbnail`) unless the
    operation needs random access (a second pass or reading rows out of order), in which case
    libvips decodes the whole image to memory first, as it would for any pyvips user.
    """
    pyvips = _pyvips()
    params = op_params(op, width, height)
    sequential = lambda data: pyvips.Image.new_from_buffer(data, "", access="sequential")  # noqa: E731
    random = lambda data: pyvips.Image.new_from_buffer(data, "")  # noqa: E731
    save = vips_saver(fmt)

    def same(im: Any) -> Any:
        return im

    if op == "resize":
        # Shrink-on-load + Lanczos3, like pixelpipe's draft + LANCZOS; never enlarges.
        return VipsCase(
            lambda d: pyvips.Image.thumbnail_buffer(d, 1024, height=10_000_000, size="down"),
            same,
            save,
            "thumbnail_buffer (shrink-on-load included in decode)",
        )
    if op == "thumbnail":
        return VipsCase(
            lambda d: pyvips.Image.thumbnail_buffer(d, params["size"], size="down"),
            same,
            save,
            "thumbnail_buffer (shrink-on-load included in decode)",
        )
    if op == "crop":
        box = (params["x"], params["y"], params["width"], params["height"])
        return VipsCase(sequential, lambda im: im.crop(*box), save)
    if op == "rotate":
        # im.rotate() would do, but sizes its canvas 2 px smaller than Pillow's expand=True;
        # the same rotation as an affine onto Pillow's canvas gives the same output.
        bicubic = pyvips.Interpolate.new("bicubic")

        def rotate(im: Any) -> Any:
            rad = math.radians(params["angle"])
            cos, sin = math.cos(rad), math.sin(rad)
            half_w = (im.width * abs(cos) + im.height * abs(sin)) / 2
            half_h = (im.width * abs(sin) + im.height * abs(cos)) / 2
            out_w = math.ceil(half_w) - math.floor(-half_w)
            out_h = math.ceil(half_h) - math.floor(-half_h)
            centre_x = cos * im.width / 2 - sin * im.height / 2
            centre_y = sin * im.width / 2 + cos * im.height / 2
            return im.affine(
                [cos, -sin, sin, cos],
                oarea=[0, 0, out_w, out_h],
                odx=out_w / 2 - centre_x,
                ody=out_h / 2 - centre_y,
                idx=0,
                idy=0,
                interpolate=bicubic,
                background=[255, 255, 255],
            )

        return VipsCase(random, rotate, save)
    if op == "flip":
        return VipsCase(sequential, lambda im: im.fliphor(), save)
    if op == "grayscale":
        # Rec.601 luma on the stored values, like Pillow's convert("L"); colourspace("b-w")
        # would compute linear-light luminance instead (a visibly different grey).
        return VipsCase(
            sequential,
            lambda im: im.recomb([LUMA]).cast("uchar").copy(interpretation="b-w"),
            save,
        )
    if op == "sepia":
        return VipsCase(sequential, lambda im: im.recomb(SEPIA).cast("uchar"), save)
    if op == "invert":
        return VipsCase(sequential, lambda im: im.invert(), save)
    if op == "auto_contrast":
        return VipsCase(
            random, lambda im: _per_band_lut(pyvips, im, _pillow_autocontrast_lut), save
        )
    if op == "equalize":
        # hist_equal() uses a slightly different formula; Pillow's table gives the same output.
        return VipsCase(random, lambda im: _per_band_lut(pyvips, im, _pillow_equalize_lut), save)
    if op == "blur":
        # A true (truncated, min_ampl 0.2) Gaussian of sigma `radius`; Pillow approximates the
        # same sigma with three box blurs. Same blur to the eye, not the same bytes.
        return VipsCase(sequential, lambda im: im.gaussblur(params["radius"]), save)
    if op == "sharpen":
        # Pillow's UnsharpMask (radius 2, 150 %, threshold 3) written out; pyvips' own
        # sharpen() works on LabS lightness with other parameters and gives another result.
        def unsharp(im: Any) -> Any:
            diff = im - im.gaussblur(2.0)
            return (diff.abs() > 3).ifthenelse(im + diff * 1.5, im).cast("uchar")

        return VipsCase(sequential, unsharp, save)
    if op == "brightness":
        return VipsCase(sequential, lambda im: im.linear(params["factor"], 0, uchar=True), save)
    if op == "contrast":
        # ImageEnhance.Contrast: blend towards the mean luma.
        def contrast(im: Any) -> Any:
            mean = round(im.recomb([LUMA]).avg())
            f = params["factor"]
            return im.linear(f, mean * (1 - f), uchar=True)

        return VipsCase(random, contrast, save)
    if op == "saturation":
        # ImageEnhance.Color: blend towards luma = one 3x3 matrix.
        f = params["factor"]
        matrix = [[f * (r == c) + (1 - f) * LUMA[c] for c in range(3)] for r in range(3)]
        return VipsCase(sequential, lambda im: im.recomb(matrix).cast("uchar"), save)
    if op == "posterize":
        mask = 256 - (1 << (8 - params["bits"]))
        return VipsCase(sequential, lambda im: im & mask, save)
    if op == "pixelate":
        size = params["size"]

        def pixelate(im: Any) -> Any:
            sw, sh = max(1, -(-im.width // size)), max(1, -(-im.height // size))
            small = im.shrink(im.width / sw, im.height / sh)
            return small.resize(im.width / sw, vscale=im.height / sh, kernel="nearest")

        return VipsCase(sequential, pixelate, save)
    if op == "edge_enhance":
        kernel = pyvips.Image.new_from_array([[-1, -1, -1], [-1, 10, -1], [-1, -1, -1]], scale=2)
        return VipsCase(sequential, lambda im: im.conv(kernel, precision="integer"), save)
    if op == "emboss":
        # Pillow's EMBOSS is (-1 0 0 / 0 1 0 / 0 0 0), but Pillow's 3x3 filter applies the
        # kernel's first row to the row *below* the pixel; libvips correlates top-down.
        kernel = pyvips.Image.new_from_array(
            [[0, 0, 0], [0, 1, 0], [-1, 0, 0]], scale=1, offset=128
        )
        return VipsCase(sequential, lambda im: im.conv(kernel, precision="integer"), save)
    if op == "watermark":

        def watermark(im: Any) -> Any:
            size = max(12, round(min(im.width, im.height) * 0.05))
            patch = _watermark_patch(pyvips, params["text"], size, 0.5)
            margin = size // 2
            x = margin + (im.width - patch.width - 2 * margin)
            y = margin + (im.height - patch.height - 2 * margin)
            out = im.composite2(patch, "over", x=x, y=y)
            return out[0:3] if out.bands == 4 else out  # opaque source: drop the alpha

        return VipsCase(sequential, watermark, save)
    if op == "compress":
        return VipsCase(sequential, same, vips_saver(fmt, params["quality"]))
    if op == "convert":
        return VipsCase(sequential, same, vips_saver(params["format"]))
    raise KeyError(op)


# -- The pixelpipe side ---------------------------------------------------------------------


def pixelpipe_chain(op: str, width: int, height: int) -> Any:
    from shared.jobs.spec import parse_spec

    return parse_spec({"operations": [op_params(op, width, height)]}).operations[0].chain


# -- Workers ------------------------------------------------------------------------------


class Worker:
    """A process holding both libraries, the images, and every case, warm."""

    def __init__(self, images: dict[str, bytes], warm: dict[str, bytes]) -> None:
        os.environ.setdefault("VIPS_WARNING", "0")
        self.pyvips = _pyvips()
        from shared.imaging import run

        self.run_pp = run
        self.images = images
        self.warm = warm
        self.chains: dict[tuple[str, str], Any] = {}
        self.vcases: dict[tuple[str, str], VipsCase] = {}

    def chain(self, image: str, op: str) -> Any:
        key = (image, op)
        if key not in self.chains:
            width, height, _ = IMAGES[image]
            self.chains[key] = pixelpipe_chain(op, width, height)
        return self.chains[key]

    def vcase(self, image: str, op: str) -> VipsCase:
        key = (image, op)
        if key not in self.vcases:
            width, height, fmt = IMAGES[image]
            self.vcases[key] = vips_case(op, fmt, width, height)
        return self.vcases[key]

    def one(self, lib: str, image: str, op: str, threads: int) -> tuple[bytes, int, int]:
        data = self.images[image]
        if lib == "pixelpipe":
            out = self.run_pp(data, self.chain(image, op), threads=threads)
            return out.data, out.width, out.height
        return self.vcase(image, op).run(data)

    def set_threads(self, threads: int) -> None:
        self.pyvips.concurrency_set(threads)

    def warmup(self, ops: list[str]) -> None:
        """First-call costs (plugin imports, font loading, pyvips introspection) off the clock."""
        from shared.imaging import run

        for fmt, data in self.warm.items():
            for op in ops:
                chain = pixelpipe_chain(op, 96, 64)
                run(data, chain, threads=1)
                vips_case(op, fmt, 96, 64).run(data)

    def measure(
        self, lib: str, image: str, op: str, threads: int, window: float, min_images: int
    ) -> tuple[int, float, tuple[int, int]]:
        self.set_threads(threads)
        gc.collect()
        n, started = 0, time.perf_counter()
        size = (0, 0)
        while True:
            _, w, h = self.one(lib, image, op, threads)
            size = (w, h)
            n += 1
            elapsed = time.perf_counter() - started
            if n >= min_images and elapsed >= window:
                return n, elapsed, size

    def verify(self, image: str, op: str) -> dict[str, Any]:
        """Both outputs once: dimensions, format, bytes, and how far apart the pixels are."""
        from PIL import Image, ImageChops, ImageStat

        self.set_threads(2)
        pp, _, _ = self.one("pixelpipe", image, op, 2)
        vv, _, _ = self.one("pyvips", image, op, 2)
        a, b = Image.open(io.BytesIO(pp)), Image.open(io.BytesIO(vv))
        result: dict[str, Any] = {
            "pixelpipe": [a.format, a.mode, a.size, len(pp)],
            "pyvips": [b.format, b.mode, b.size, len(vv)],
            "same_size": a.size == b.size,
            "same_format": a.format == b.format,
        }
        if a.size == b.size:
            mode = "RGB" if "RGB" in (a.mode, b.mode) else "L"
            diff = ImageChops.difference(a.convert(mode), b.convert(mode))
            result["mean_abs_diff"] = round(sum(ImageStat.Stat(diff).mean) / len(mode), 2)
        return result

    def breakdown(self, lib: str, image: str, op: str, threads: int, reps: int) -> dict[str, Any]:
        """Median decode / op / encode (and the fused total) over `reps` runs."""
        self.set_threads(threads)
        data = self.images[image]
        parts: dict[str, list[float]] = {"decode": [], "op": [], "encode": [], "total": []}
        for _ in range(reps):
            gc.collect()
            if lib == "pixelpipe":
                from shared.imaging import Limits
                from shared.imaging.encode import encode
                from shared.imaging.pipeline import _context, apply, decode_for

                chain = self.chain(image, op)
                limits = Limits()
                t0 = time.perf_counter()
                picture, _ = decode_for(data, [chain], limits)
                t1 = time.perf_counter()
                out = apply(picture, chain, _context(limits, threads, None), owned=True)
                t2 = time.perf_counter()
                encode(
                    out,
                    chain.output_format(picture.source_format),
                    chain.quality,
                    chain.max_bytes,
                    threads=threads,
                )
                t3 = time.perf_counter()
                del picture, out
                self.run_pp(data, chain, threads=threads)
                t4 = time.perf_counter()
            else:
                case = self.vcase(image, op)
                t0 = time.perf_counter()
                loaded = case.load(data).copy_memory()
                t1 = time.perf_counter()
                done = case.op(loaded).copy_memory()
                t2 = time.perf_counter()
                case.save(done)
                t3 = time.perf_counter()
                del loaded, done
                case.run(data)
                t4 = time.perf_counter()
            parts["decode"].append(t1 - t0)
            parts["op"].append(t2 - t1)
            parts["encode"].append(t3 - t2)
            parts["total"].append(t4 - t3)
        result: dict[str, Any] = {
            f"{k}_ms": round(statistics.median(v) * 1000, 1) for k, v in parts.items()
        }
        if lib == "pyvips" and self.vcase(image, op).note:
            result["note"] = self.vcase(image, op).note
        return result


def _worker_main(
    conn: Any,
    barrier: Any,
    images: dict[str, bytes],
    warm: dict[str, bytes],
) -> None:
    worker = Worker(images, warm)
    while True:
        message = conn.recv()
        kind, args = message[0], message[1:]
        try:
            if kind == "stop":
                return
            if kind == "warmup":
                worker.warmup(*args)
                conn.send(("ok", None))
            elif kind == "measure":
                sync, *rest = args
                if sync:
                    barrier.wait()
                conn.send(("ok", worker.measure(*rest)))
            elif kind == "verify":
                conn.send(("ok", worker.verify(*args)))
            elif kind == "breakdown":
                conn.send(("ok", worker.breakdown(*args)))
        except Exception as exc:  # report, keep serving
            import traceback

            conn.send(("error", f"{exc.__class__.__name__}: {exc}\n{traceback.format_exc()}"))


class Pool:
    """Two persistent workers (spawned: no inherited threads), fed over pipes."""

    def __init__(
        self,
        images: dict[str, bytes],
        warm: dict[str, bytes],
        count: int = 2,
    ) -> None:
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(count)
        self.conns, self.procs = [], []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(child, self.barrier, images, warm),
                daemon=True,
            )
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def call(self, workers: list[int], *message: Any) -> list[Any]:
        for index in workers:
            self.conns[index].send(message)
        results = []
        for index in workers:
            status, value = self.conns[index].recv()
            if status != "ok":
                raise RuntimeError(f"worker {index}: {value}")
            results.append(value)
        return results

    def close(self) -> None:
        for conn in self.conns:
            conn.send(("stop",))
        for proc in self.procs:
            proc.join(timeout=10)


def measure_case(
    pool: Pool,
    lib: str,
    image: str,
    op: str,
    mode: str,
    window: float,
    min_images: int,
) -> tuple[float, tuple[int, int]]:
    """Images per second for one library on one case, in one mode."""
    if mode == "throughput":
        results = pool.call([0, 1], "measure", True, lib, image, op, 1, window, min_images)
        return sum(n / elapsed for n, elapsed, _ in results), results[0][2]
    ((n, elapsed, size),) = pool.call([0], "measure", False, lib, image, op, 2, window, min_images)
    return n / elapsed, size


def verify_outputs(pool: Pool, cases: list[tuple[str, str]]) -> None:
    """Each case once through both libraries (both workers, half each): warn on mismatches."""
    for start in range(0, len(cases), 2):
        pair = cases[start : start + 2]
        for index, (image, op) in enumerate(pair):
            pool.conns[index].send(("verify", image, op))
        for index, (image, op) in enumerate(pair):
            status, check = pool.conns[index].recv()
            if status != "ok":
                log(f"[verify] WARNING {image}/{op}: failed: {check}")
            elif not check["same_size"] or not check["same_format"]:
                log(
                    f"[verify] WARNING {image}/{op}: pixelpipe {check['pixelpipe']} "
                    f"vs pyvips {check['pyvips']}"
                )
            else:
                log(
                    f"[verify] {image}/{op}: {check['pixelpipe'][0]} {check['pixelpipe'][2]}, "
                    f"bytes {check['pixelpipe'][3]} vs {check['pyvips'][3]}, "
                    f"mean |diff| {check.get('mean_abs_diff')}"
                )


def run_cases(
    pools: dict[str, Pool],
    cases: list[tuple[str, str]],
    modes: list[str],
    rounds: int,
    window: float,
    min_images: int,
    started: float,
) -> list[tuple[float, str]]:
    """Every case, round after round (a burst of machine noise spoils one round of many
    cases, not every round of one); within a round the contestants take turns in a rotating
    order (AB, BA, ...). Slow cases (over SLOW_ROUND
    seconds a round) stop after three rounds. Returns (ratio, case) for every case."""
    # contestant -> (pool, library the worker runs)
    contestants = {"pixelpipe": (pools["plain"], "pixelpipe"), "pyvips": (pools["plain"], "pyvips")}
    names = list(contestants)
    keys = [(image, op, mode) for image, op in cases for mode in modes]
    per: dict[tuple[str, str, str], dict[str, list[float]]] = {
        key: {name: [] for name in names} for key in keys
    }
    spent: dict[tuple[str, str, str], float] = dict.fromkeys(keys, 0.0)
    sizes: dict[tuple[str, str, str], dict[str, tuple[int, int]]] = {key: {} for key in keys}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for key in keys:
            if r >= 3 and spent[key] / r > SLOW_ROUND:
                continue
            image, op, mode = key
            began = time.perf_counter()
            for name in order:
                pool, lib = contestants[name]
                rate, size = measure_case(pool, lib, image, op, mode, window, min_images)
                per[key][name].append(rate)
                sizes[key][name] = size
            spent[key] += time.perf_counter() - began
        load = os.getloadavg()[0]
        elapsed = time.perf_counter() - started
        log(f"[bench] round {r + 1}/{rounds} done ({elapsed:.0f}s, load average {load:.1f})")

    ratios: list[tuple[float, str]] = []
    for key in keys:
        image, op, mode = key
        if sizes[key]["pixelpipe"] != sizes[key]["pyvips"]:
            log(
                f"[bench] WARNING {image}/{op}: output {sizes[key]['pixelpipe']} (pixelpipe) "
                f"vs {sizes[key]['pyvips']} (pyvips)"
            )
        medians = {name: statistics.median(per[key][name]) for name in names}
        pp, ref = medians["pixelpipe"], medians["pyvips"]
        case = f"{image}/{op}/{mode}"
        ratio = pp / ref
        ratios.append((ratio, case))
        record: dict[str, Any] = {
            "bench": "imaging",
            "case": case,
            "pixelpipe_per_s": round(pp, 3),
            "reference": "pyvips",
            "reference_per_s": round(ref, 3),
            "ratio": round(ratio, 3),
        }
        emit(record)
        spread = " / ".join(f"{min(v):.2f}-{max(v):.2f}" for v in per[key].values())
        log(
            f"[bench] {case}: {pp:.2f}/s vs {ref:.2f}/s = {ratio:.2f} "
            f"(n={len(per[key]['pixelpipe'])}, ranges {spread})"
        )
    return ratios


# -- Memory (a fresh process per measurement) ---------------------------------------------


def _rss_kb() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) for k in ("VmHWM", "VmRSS")}  # type: ignore[union-attr]


def memory_child(lib: str, image_path: str, op: str, threads: int) -> None:
    """Peak RSS of one operation above the process's settled baseline, in MB (stdout JSON)."""
    data = Path(image_path).read_bytes()
    width, height, fmt = IMAGES["12mp"]
    warm_im = make_photo(96, 64)
    out = io.BytesIO()
    warm_im.save(out, "JPEG" if fmt == "jpeg" else "PNG")
    warm = out.getvalue()
    if lib == "pixelpipe":
        from shared.imaging import run

        chain = pixelpipe_chain(op, width, height)
        run(warm, pixelpipe_chain(op, 96, 64), threads=threads)

        def once() -> Any:
            return run(data, chain, threads=threads)
    else:
        pyvips = _pyvips()
        pyvips.concurrency_set(threads)
        case = vips_case(op, fmt, width, height)
        vips_case(op, fmt, 96, 64).run(warm)

        def once() -> Any:
            return case.run(data)

    del warm_im, out, warm
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
        base = _rss_kb()["VmRSS"]
        result = once()
        peak = _rss_kb()["VmHWM"]
        method = "VmHWM"
    except OSError:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = once()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        method = "ru_maxrss"
    del result
    print(json.dumps({"peak_mb": round((peak - base) * 1024 / MB, 1), "method": method}))


def measure_memory(image_data: bytes, ops: list[str]) -> None:
    """Peak RSS for each 12 MP operation (pixelpipe threads=2, pyvips concurrency 2)."""
    width, height, _ = IMAGES["12mp"]
    decoded = width * height * 3 / MB
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "12mp.jpg"
        path.write_bytes(image_data)
        jobs = [(op, lib) for op in ops for lib in LIBS]
        running: list[tuple[str, str, subprocess.Popen[str]]] = []
        found: dict[tuple[str, str], float] = {}

        def reap(item: tuple[str, str, subprocess.Popen[str]]) -> None:
            op, lib, proc = item
            stdout, stderr = proc.communicate()
            try:
                found[(op, lib)] = json.loads(stdout.strip().splitlines()[-1])["peak_mb"]
            except (ValueError, IndexError, KeyError):
                log(f"[memory] {lib} {op} failed: {stderr.strip()[-400:]}")

        for op, lib in jobs:  # two at a time: memory is not timing-sensitive
            if len(running) >= 2:
                reap(running.pop(0))
            cmd = [sys.executable, __file__, "--_memory-child", lib, str(path), op, "2"]
            running.append(
                (
                    op,
                    lib,
                    subprocess.Popen(
                        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                    ),
                )
            )
        for item in running:
            reap(item)
    for op in ops:
        peak = found.get((op, "pixelpipe"))
        if peak is None:
            continue
        record = {
            "bench": "imaging",
            "memory": True,
            "case": f"12mp/{op}",
            "peak_mb": peak,
            "decoded_rgb_mb": round(decoded, 1),
            "ratio": round(peak / decoded, 2),
        }
        if (op, "pyvips") in found:
            record["reference_peak_mb"] = found[(op, "pyvips")]
        emit(record)


# -- Driver ------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    parser.add_argument("--ops", help="comma-separated operations (default: all)")
    parser.add_argument("--images", help="comma-separated: " + ",".join(IMAGES))
    parser.add_argument("--modes", help="comma-separated: " + ",".join(MODES))
    parser.add_argument("--rounds", type=int, help="rounds per case (median reported)")
    parser.add_argument("--window", type=float, help="seconds per measurement (at least)")
    parser.add_argument("--min-images", type=int, default=1, help="per stream per measurement")
    parser.add_argument("--memory", action="store_true", help="measure 12 MP peak RSS (quick)")
    parser.add_argument("--no-memory", action="store_true", help="skip memory (full run)")
    parser.add_argument("--verify", action="store_true", help="compare outputs (quick)")
    parser.add_argument("--no-verify", action="store_true", help="skip the check (full run)")
    parser.add_argument(
        "--breakdown", action="store_true", help="decode/op/encode times instead of the bench"
    )
    parser.add_argument("--reps", type=int, default=5, help="--breakdown: runs per part")
    parser.add_argument("--_memory-child", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _listed(value: str | None, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    if not value:
        return list(allowed)
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args._memory_child:
        lib, path, op, threads = args._memory_child
        memory_child(lib, path, op, int(threads))
        return 0

    from shared.imaging import REGISTRY

    missing = sorted(set(REGISTRY) - set(OPS))
    if missing:
        log(f"[bench] WARNING: registered operations without a bench case: {', '.join(missing)}")
    ops = _listed(args.ops, OPS, "operations")
    images = _listed(args.images, tuple(IMAGES), "images")
    modes = _listed(args.modes, MODES, "modes")
    rounds = args.rounds or (1 if args.quick else 5)
    window = args.window or (0.1 if args.quick else 0.25)
    memory = (args.memory or not args.quick) and not args.no_memory and not args.breakdown
    verify = (args.verify or not args.quick) and not args.no_verify and not args.breakdown

    cases = [
        (image, op)
        for image in images
        for op in ops
        if not (args.quick and not args.ops and op not in QUICK_OPS.get(image, (op,)))
    ]
    started = time.perf_counter()
    data, warm = make_images(images)
    pool = Pool(data, warm)
    pools = {"plain": pool}
    try:
        for each in pools.values():
            each.call([0, 1], "warmup", sorted({op for _, op in cases}))
        log(f"[bench] workers warm ({time.perf_counter() - started:.1f}s)")

        if args.breakdown:
            for image, op in cases:
                for mode in modes:
                    threads = 1 if mode == "throughput" else 2
                    for lib in LIBS:
                        (parts,) = pool.call([0], "breakdown", lib, image, op, threads, args.reps)
                        emit(
                            {
                                "bench": "imaging",
                                "breakdown": True,
                                "case": f"{image}/{op}/{mode}",
                                "lib": lib,
                                "threads": threads,
                                **parts,
                            }
                        )
            return 0

        if verify:
            verify_outputs(pool, cases)
        ratios = run_cases(pools, cases, modes, rounds, window, args.min_images, started)
    finally:
        for each in pools.values():
            each.close()

    if memory and "12mp" in images:
        mem_started = time.perf_counter()
        ops_12mp = [op for image, op in cases if image == "12mp"]
        measure_memory(data["12mp"], ops_12mp)
        log(f"[bench] memory done ({time.perf_counter() - mem_started:.0f}s)")

    if ratios:
        geomean = math.exp(sum(math.log(r) for r, _ in ratios) / len(ratios))
        worst = min(ratios)
        summary: dict[str, Any] = {
            "bench": "imaging",
            "summary": True,
            "geomean_ratio": round(geomean, 3),
            "min_ratio": round(worst[0], 3),
            "worst_case": worst[1],
            "cases": len(ratios),
        }
        emit(summary)
    log(f"[bench] done in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
