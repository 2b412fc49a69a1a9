"""Steps that own their input write their result into it: the same pixels as the plain path,
and a source other chains share is never touched."""

from __future__ import annotations

import dataclasses
import random

import pytest
from PIL import Image, ImageFilter

from shared.imaging import REGISTRY, Limits, OpContext, run, run_many
from shared.imaging.encode import encode
from shared.imaging.ops.filters import gaussian_reach
from shared.imaging.parallel import MIN_INPLACE_PIXELS, map_bands, map_pixels, mirror_rows
from shared.imaging.pipeline import _context, apply, decode_for
from shared.jobs.spec import parse_spec
from tests.fixtures import images

# Just over the size where the in-place paths start, with odd sides.
W, H = 1201, 901
assert W * H >= MIN_INPLACE_PIXELS

# Neighbourhood filters write in place only on several threads (their margins cost time).
FILTERS = ("blur", "sharpen", "edge_enhance", "emboss")
PIXEL_OPS = [
    ("sepia", {}),
    ("invert", {}),
    ("auto_contrast", {}),
    ("auto_contrast", {"cutoff": 3}),
    ("equalize", {}),
    ("brightness", {"factor": 1.3}),
    ("contrast", {"factor": 0.7}),
    ("saturation", {"factor": 1.6}),
    ("posterize", {"bits": 3}),
    ("blur", {"radius": 2}),
    ("blur", {"radius": 60}),  # reach beyond one band
    ("sharpen", {}),
    ("edge_enhance", {"strength": "more"}),
    ("emboss", {}),
    ("pixelate", {"size": 10}),
    ("pixelate", {"size": 7}),
    ("pixelate", {"size": 2}),
    ("flip", {"direction": "horizontal"}),
    ("flip", {"direction": "vertical"}),
    ("flip", {"direction": "both"}),
    ("rotate", {"angle": 180}),
    ("watermark", {"text": "© pixelpipe", "position": "tile"}),
]


def _image(mode: str, height: int = H) -> Image.Image:
    image = images.photo(W, height).convert(mode)
    if mode in ("RGBA", "LA"):
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    return image


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
@pytest.mark.parametrize(("op", "raw"), PIXEL_OPS)
def test_consuming_a_step_gives_the_same_pixels(op, raw, mode):
    operation = REGISTRY[op]
    params = operation.parse({"op": op, **raw}, "t")
    source = _image(mode)
    before = source.tobytes()
    plain = operation.apply(source, params, OpContext(threads=2))
    assert source.tobytes() == before  # not consumed: untouched
    for threads in (1, 3):
        mine = source.copy()
        out = operation.apply(mine, params, OpContext(threads=threads, consume=True))
        assert (out.mode, out.size) == (plain.mode, plain.size)
        assert out.tobytes() == plain.tobytes(), f"{op} {raw} {mode} threads={threads}"
        filter_on_one_thread = threads == 1 and op in FILTERS
        if mode == "RGB" and not filter_on_one_thread:
            assert out is mine, f"{op} did not write into its own input"


@pytest.mark.parametrize("height", [H, H + 1, 3, 2, 1])
@pytest.mark.parametrize(
    "method",
    [Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180],
)
def test_mirror_rows_in_place_matches_transpose(method, height):
    width = max(W, -(-MIN_INPLACE_PIXELS // height))
    noise = random.Random(height).randbytes(width * height * 3)
    image = Image.frombytes("RGB", (width, height), noise)
    expected = image.transpose(method).tobytes()
    for threads in (1, 2):
        mine = image.copy()
        assert mirror_rows(mine, method, inplace=True, threads=threads) is mine
        assert mine.tobytes() == expected


@pytest.mark.parametrize(("rows", "margin"), [(256, 7), (32, 40), (100, 100), (5000, 3)])
def test_map_bands_in_place_matches_one_call(rows, margin):
    image = images.photo(W, H)
    kernel = ImageFilter.BoxBlur(margin)  # reads exactly `margin` rows away
    expected = image.filter(kernel).tobytes()
    for threads in (1, 2, 4):
        mine = image.copy()
        out = map_bands(
            mine,
            lambda b: b.filter(kernel),
            margin=margin,
            threads=threads,
            rows=rows,
            inplace=True,
        )
        assert out is mine and mine.tobytes() == expected


def test_map_bands_in_place_with_gaussian_reach():
    image = images.photo(W, H)
    kernel = ImageFilter.GaussianBlur(9)
    mine = image.copy()
    map_bands(mine, lambda b: b.filter(kernel), margin=gaussian_reach(9), threads=2, inplace=True)
    assert mine.tobytes() == image.filter(kernel).tobytes()


def test_map_pixels_falls_back_when_the_mode_changes():
    image = images.photo(W, H).convert("L")
    before = image.tobytes()
    out = map_pixels(image, lambda im: im.convert("RGB"), inplace=True, threads=2)
    assert out.mode == "RGB" and image.tobytes() == before


def test_small_images_are_never_changed_in_place():
    image = images.photo(400, 300)
    before = image.tobytes()
    out = REGISTRY["invert"].apply(image, {}, OpContext(consume=True))
    assert out is not image and image.tobytes() == before


# -- the pipeline -----------------------------------------------------------------------------


def chain(*raw: dict, **options):
    spec = parse_spec({"operations": [{**raw[0], "then": list(raw[1:]), **options}]})
    return spec.operations[0].chain


def _spy(monkeypatch, name: str, seen: list[bool]) -> None:
    operation = REGISTRY[name]

    def spy(image, params, ctx):
        seen.append(ctx.consume)
        return operation.apply(image, params, ctx)

    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(operation, apply=spy))


def test_run_lets_every_step_consume(monkeypatch):
    seen: list[bool] = []
    _spy(monkeypatch, "invert", seen)
    run(images.jpeg(W, H), chain({"op": "invert"}, {"op": "invert"}), threads=2)
    assert seen == [True, True]


def test_shared_source_is_never_consumed(monkeypatch):
    data = images.jpeg(W, H)
    # compress returns its input itself, so the flip after it still gets the shared source;
    # the invert after that gets the flip's own output, which it may consume.
    steps = ({"op": "compress"}, {"op": "flip"}, {"op": "invert"}, {"op": "blur", "radius": 3})
    flips: list[bool] = []
    inverts: list[bool] = []
    _spy(monkeypatch, "flip", flips)
    _spy(monkeypatch, "invert", inverts)
    picture, _ = decode_for(data, [chain(*steps)], Limits())
    source = picture.image.tobytes()
    out = apply(picture, chain(*steps), _context(Limits(), 2, None))
    assert picture.image.tobytes() == source
    assert (flips, inverts) == ([False], [True])
    plain = picture.image
    for raw in steps:
        op = REGISTRY[raw["op"]]
        plain = op.apply(plain.copy(), op.parse(raw, "t"), OpContext(threads=1))
    assert out.image.tobytes() == plain.tobytes()


def test_run_many_chains_see_the_untouched_source():
    data = images.jpeg(W, H)
    chains = [
        chain({"op": "invert"}),
        chain({"op": "flip", "direction": "vertical"}),
        chain({"op": "blur", "radius": 3}),
        chain({"op": "brightness", "factor": 1.5}, {"op": "sepia"}),
        chain({"op": "compress"}, {"op": "emboss"}),
        chain({"op": "watermark", "text": "x"}),
    ]
    together = run_many(data, chains, threads=4)
    for one, each in zip(together, chains, strict=True):
        assert not isinstance(one, Exception)
        assert one.data == run(data, each, threads=1).data


@pytest.mark.parametrize(
    "raw",
    [
        {"op": "sepia"},
        {"op": "blur", "radius": 4},
        {"op": "pixelate", "size": 9},
        {"op": "rotate", "angle": 30},
        {"op": "rotate", "angle": 90},
        {"op": "equalize"},
    ],
)
def test_run_output_equals_the_plain_path(raw):
    data = images.jpeg(W, H)
    each = chain(raw)
    limits = Limits()
    picture, _ = decode_for(data, [each], limits)
    plain = apply(picture, each, _context(limits, 2, None))
    expected = encode(plain, "jpeg", threads=2)
    assert run(data, each, threads=2).data == expected.data
