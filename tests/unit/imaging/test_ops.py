"""Every operation: output size, mode and a visible effect; alpha handling; limits."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from shared.errors import InvalidSpec, OperationFailed
from shared.imaging import REGISTRY, Limits, OpContext
from shared.imaging.ops.filters import gaussian_reach
from shared.imaging.ops.geometry import resize_plan
from shared.imaging.parallel import map_bands
from tests.fixtures import images


def apply(op: str, image: Image.Image, ctx: OpContext | None = None, **raw) -> Image.Image:
    operation = REGISTRY[op]
    params = operation.parse({"op": op, **raw}, "t")
    before = image.tobytes()
    out = operation.apply(image, params, ctx or OpContext())
    assert image.tobytes() == before, f"{op} modified its input in place"
    return out


def differs(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0 = identical)."""
    if a.size != b.size or a.mode != b.mode:
        return 255.0
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / len(a.getbands())


@pytest.fixture
def rgb():
    return images.photo(400, 300)


@pytest.fixture
def rgba():
    im = images.photo(400, 300).convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize((400, 300)))
    return im


# -- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ({"width": 200}, (200, 150)),
        ({"height": 60}, (80, 60)),
        ({"width": 200, "height": 200}, (200, 150)),  # contain
        ({"width": 200, "height": 200, "fit": "inside"}, (200, 150)),
        ({"width": 200, "height": 200, "fit": "cover"}, (200, 200)),
        ({"width": 200, "height": 100, "fit": "fill"}, (200, 100)),
        ({"width": 200, "height": 200, "fit": "pad"}, (200, 200)),
        ({"width": 800}, (400, 300)),  # no upscale
        ({"width": 800, "upscale": True}, (800, 600)),
        ({"width": 800, "height": 800, "fit": "cover"}, (300, 300)),  # box aspect, 1:1
        ({"width": 800, "height": 100, "fit": "fill"}, (400, 100)),
    ],
)
def test_resize_sizes(rgb, raw, size):
    assert apply("resize", rgb, **raw).size == size


def test_resize_keeps_content(rgb):
    small = apply("resize", rgb, width=200)
    assert differs(small, rgb.resize((200, 150), Image.Resampling.LANCZOS)) < 2


def test_resize_cover_gravity_picks_the_side(rgb):
    left = apply("resize", rgb, width=100, height=100, fit="cover", gravity="west")
    right = apply("resize", rgb, width=100, height=100, fit="cover", gravity="east")
    assert differs(left, right) > 5


def test_resize_pad_uses_background(rgb):
    out = apply("resize", rgb, width=200, height=200, fit="pad", background="#ff0000")
    assert out.getpixel((100, 2)) == (255, 0, 0)
    clear = apply("resize", rgb, width=200, height=200, fit="pad", background="transparent")
    assert clear.mode == "RGBA" and clear.getpixel((100, 2))[3] == 0


def test_resize_needs_a_dimension():
    with pytest.raises(InvalidSpec) as err:
        REGISTRY["resize"].parse({"op": "resize", "fit": "cover"}, "operations[0]")
    assert err.value.path == "operations[0].width"


def test_resize_refuses_outputs_over_the_pixel_cap(rgb):
    ctx = OpContext(limits=Limits(max_frame_pixels=500 * 500))
    with pytest.raises(OperationFailed):
        apply("resize", rgb, ctx, width=1000, upscale=True)


def test_resize_plan_is_pure():
    plan = resize_plan((4000, 3000), 1000, 1000, "cover")
    assert plan.size == (1000, 1000) and plan.box == (500.0, 0.0, 3500.0, 3000.0)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ({"size": 100}, (100, 75)),
        ({"size": 100, "crop": True}, (100, 100)),
        ({"size": 1000}, (400, 300)),
        ({"size": 1000, "crop": True}, (300, 300)),
    ],
)
def test_thumbnail(rgb, raw, size):
    assert apply("thumbnail", rgb, **raw).size == size


def test_crop_rectangle_and_clamping(rgb):
    out = apply("crop", rgb, x=10, y=20, width=100, height=50)
    assert out.size == (100, 50)
    assert out.getpixel((0, 0)) == rgb.getpixel((10, 20))
    assert apply("crop", rgb, x=350, y=250, width=100, height=100).size == (50, 50)


def test_crop_outside_the_image_fails(rgb):
    with pytest.raises(OperationFailed):
        apply("crop", rgb, x=500, y=0, width=10, height=10)


@pytest.mark.parametrize(
    ("aspect", "size"),
    [("16:9", (400, 225)), ("1:1", (300, 300)), (0.5, (150, 300)), ("3/4", (225, 300))],
)
def test_crop_aspect(rgb, aspect, size):
    assert apply("crop", rgb, aspect=aspect).size == size


def test_crop_needs_rect_or_aspect():
    with pytest.raises(InvalidSpec) as err:
        REGISTRY["crop"].parse({"op": "crop", "x": 1}, "p")
    assert err.value.path == "p.width"
    with pytest.raises(InvalidSpec):
        REGISTRY["crop"].parse({"op": "crop", "aspect": "1:1", "width": 3, "height": 3}, "p")


def test_rotate_quarter_turns_are_lossless_and_clockwise(rgb):
    out = apply("rotate", rgb, angle=90)
    assert out.size == (300, 400)
    assert out.getpixel((299, 0)) == rgb.getpixel((0, 0))  # top-left goes to top-right
    assert apply("rotate", rgb, angle=-270).tobytes() == out.tobytes()
    assert apply("rotate", rgb, angle=360).tobytes() == rgb.tobytes()


def test_rotate_any_angle_expands_and_fills(rgb):
    out = apply("rotate", rgb, angle=45)
    assert out.width > 400 and out.height > 300
    assert out.getpixel((0, 0)) == (255, 255, 255)
    black = apply("rotate", rgb, angle=30, background="black")
    assert black.getpixel((0, 0)) == (0, 0, 0)
    clear = apply("rotate", rgb, angle=30, background="transparent")
    assert clear.mode == "RGBA" and clear.getpixel((0, 0))[3] == 0


def test_flip(rgb):
    h = apply("flip", rgb, direction="horizontal")
    assert h.getpixel((0, 0)) == rgb.getpixel((399, 0))
    v = apply("flip", rgb, direction="vertical")
    assert v.getpixel((0, 0)) == rgb.getpixel((0, 299))
    assert apply("flip", rgb, direction="both").getpixel((0, 0)) == rgb.getpixel((399, 299))


# -- colour --------------------------------------------------------------------------------


def test_grayscale(rgb, rgba):
    assert apply("grayscale", rgb).mode == "L"
    out = apply("grayscale", rgba)
    assert out.mode == "LA" and out.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()


def test_sepia_is_warm(rgb):
    r, g, b = ImageStat.Stat(apply("sepia", rgb)).mean
    assert r > g > b


def test_invert(rgb):
    out = apply("invert", rgb)
    assert tuple(255 - c for c in rgb.getpixel((5, 5))) == out.getpixel((5, 5))


def test_colour_ops_keep_alpha(rgba):
    for op, raw in [
        ("invert", {}),
        ("sepia", {}),
        ("brightness", {"factor": 1.5}),
        ("contrast", {"factor": 0.5}),
        ("saturation", {"factor": 2}),
        ("posterize", {"bits": 2}),
        ("equalize", {}),
        ("auto_contrast", {}),
        ("sharpen", {}),
        ("emboss", {}),
        ("edge_enhance", {}),
    ]:
        out = apply(op, rgba, **raw)
        assert out.mode == "RGBA", op
        assert out.getchannel("A").tobytes() == rgba.getchannel("A").tobytes(), op


def test_brightness_contrast_saturation(rgb):
    mean = sum(ImageStat.Stat(rgb).mean)
    assert sum(ImageStat.Stat(apply("brightness", rgb, factor=1.5)).mean) > mean * 1.2
    assert sum(ImageStat.Stat(apply("brightness", rgb, factor=0.5)).mean) < mean * 0.6
    assert differs(apply("brightness", rgb, factor=1), rgb) == 0
    flat = apply("contrast", rgb, factor=0)
    assert max(hi - lo for lo, hi in flat.getextrema()) <= 1
    grey = apply("saturation", rgb, factor=0)
    r, g, b = grey.getpixel((100, 100))
    assert abs(r - g) <= 1 and abs(g - b) <= 1


def test_factor_is_required():
    with pytest.raises(InvalidSpec) as err:
        REGISTRY["brightness"].parse({"op": "brightness"}, "operations[1]")
    assert err.value.path == "operations[1].factor"


def test_posterize_reduces_levels(rgb):
    out = apply("posterize", rgb, bits=2)
    assert len(set(out.getchannel("R").tobytes())) <= 4


def test_equalize_and_auto_contrast_stretch(rgb):
    dull = rgb.point(lambda v: 100 + v // 4)
    assert all(hi - lo <= 64 for lo, hi in dull.getextrema())
    for op in ("equalize", "auto_contrast"):
        assert all(hi - lo >= 200 for lo, hi in apply(op, dull).getextrema()), op


# -- filters -------------------------------------------------------------------------------


def edge_energy(image: Image.Image) -> float:
    return sum(ImageStat.Stat(image.filter(ImageFilter.FIND_EDGES)).mean)


def test_blur_smooths(rgb):
    out = apply("blur", rgb, radius=4)
    assert out.size == rgb.size
    assert edge_energy(out) < edge_energy(rgb) * 0.65
    assert edge_energy(apply("blur", rgb, radius=12)) < edge_energy(out)


def test_blur_premultiplies_alpha():
    im = Image.new("RGBA", (200, 200), (255, 255, 255, 255))
    im.paste((0, 0, 0, 0), (100, 0, 200, 200))  # transparent *black* right half
    out = apply("blur", im, radius=5)
    r, g, b, a = out.getpixel((101, 100))
    assert 0 < a < 255 and min(r, g, b) > 240  # no dark fringe bleeding in


def test_sharpen_adds_contrast_at_edges(rgb):
    soft = apply("blur", rgb, radius=2)
    sharp = apply("sharpen", soft, radius=2, percent=300)
    assert ImageStat.Stat(sharp).stddev[0] > ImageStat.Stat(soft).stddev[0]


def test_pixelate_makes_blocks(rgb):
    out = apply("pixelate", rgb, size=20)
    assert out.size == rgb.size
    block = out.crop((0, 0, 20, 20))
    assert block.getcolors() is not None and len(block.getcolors()) == 1


def test_edge_enhance_and_emboss(rgb):
    assert differs(apply("edge_enhance", rgb), rgb) > 1
    assert differs(apply("edge_enhance", rgb, strength="more"), apply("edge_enhance", rgb)) > 0.5
    embossed = apply("emboss", rgb)
    assert abs(ImageStat.Stat(embossed.convert("L")).mean[0] - 128) < 30


@pytest.mark.parametrize(
    "op,raw",
    [
        ("blur", {"radius": 3.5}),
        ("blur", {"radius": 20}),
        ("sharpen", {"radius": 2}),
        ("emboss", {}),
        ("edge_enhance", {"strength": "more"}),
    ],
)
def test_band_parallel_result_is_identical(op, raw):
    image = images.photo(1600, 1000)
    one = apply(op, image, OpContext(threads=1))
    many = apply(op, image, OpContext(threads=4))
    assert one.tobytes() == many.tobytes()


def test_map_bands_really_splits_into_short_bands():
    image = images.photo(1600, 1000)
    seen = []

    def record(band):
        seen.append(band.size)
        return band

    out = map_bands(image, record, margin=gaussian_reach(2), threads=2)
    assert len(seen) == 4 and all(h <= 250 + 2 * gaussian_reach(2) for _, h in seen)
    assert out.tobytes() == image.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
@pytest.mark.parametrize("angle", [33.3, -71, 179.5])
def test_band_parallel_rotate_is_identical_to_pillows(mode, angle):
    image = images.photo(1400, 900).convert(mode)
    one = apply("rotate", image, OpContext(threads=1), angle=angle)
    many = apply("rotate", image, OpContext(threads=3), angle=angle)
    assert one.size == many.size and one.tobytes() == many.tobytes()


@pytest.mark.parametrize(
    ("op", "factor"),
    [
        ("brightness", 0.2),
        ("brightness", 1.37),
        ("brightness", 7.5),
        ("contrast", 0.0),
        ("contrast", 0.61),
        ("contrast", 2.4),
    ],
)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_lookup_table_enhancements_equal_image_enhance(rgb, op, factor, mode):
    from PIL import ImageEnhance

    image = rgb.convert(mode)
    enhancer = ImageEnhance.Brightness if op == "brightness" else ImageEnhance.Contrast
    assert apply(op, image, factor=factor).tobytes() == enhancer(image).enhance(factor).tobytes()


# -- overlay and output ----------------------------------------------------------------------


@pytest.mark.parametrize("position", ["southeast", "center", "northwest", "tile"])
def test_watermark_marks_the_image(rgb, position):
    out = apply("watermark", rgb, text="pixelpipe", position=position, opacity=0.8)
    assert out.size == rgb.size and out.mode == "RGB"
    assert differs(out, rgb) > 0.05


def test_watermark_lands_where_asked(rgb):
    out = apply(
        "watermark", rgb, text="MARK", position="northwest", size=40, opacity=1, color="#00ff00"
    )
    changed = ImageChops.difference(out, rgb).convert("L").point(lambda v: 255 if v > 30 else 0)
    _left, _top, right, bottom = changed.getbbox()
    assert right < 200 and bottom < 150


def test_watermark_on_grey_and_alpha(rgb, rgba):
    assert apply("watermark", rgb.convert("L"), text="x").mode == "RGB"
    assert apply("watermark", rgba, text="x", position="tile").mode == "RGBA"


def test_watermark_text_is_validated():
    for bad in ("", "x" * 201, "a\x00b", 5):
        with pytest.raises(InvalidSpec):
            REGISTRY["watermark"].parse({"op": "watermark", "text": bad}, "p")


def test_output_ops_leave_pixels_alone(rgb):
    assert apply("compress", rgb, quality=50) is rgb
    assert apply("convert", rgb, format="png") is rgb
    with pytest.raises(InvalidSpec) as err:
        REGISTRY["convert"].parse({"op": "convert"}, "operations[0]")
    assert err.value.path == "operations[0].format"
