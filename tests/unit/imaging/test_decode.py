"""The prologue: sniffing, limits before decoding, full decode, normalisation (SECURITY.md 4-21)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.errors import ImageCorrupt, ImageTooLarge, PayloadTooLarge, UnsupportedMediaType
from shared.imaging import Chain, Limits, Step, decode, probe, run
from tests.fixtures import images


def test_accepts_each_allowed_format():
    for data, fmt in [
        (images.jpeg(), "jpeg"),
        (images.png(), "png"),
        (images.webp(), "webp"),
        (images.animated_gif(), "gif"),
        (images.avif(), "avif"),
    ]:
        info = probe(data, Limits())
        assert info.format == fmt
        picture, _ = decode(data, Limits())
        assert picture.image.mode in ("L", "LA", "RGB", "RGBA")


def test_header_declaring_20000_square_is_refused_without_decoding():
    data = images.png_header_only(20000, 20000)
    assert len(data) < 70
    # The pixel data is empty: had anything tried to decode it, the error would be
    # IMAGE_CORRUPT. IMAGE_TOO_LARGE shows the refusal came from the header alone.
    for check in (probe, decode):
        with pytest.raises(ImageTooLarge) as err:
            check(data, Limits())
        assert err.value.code == "IMAGE_TOO_LARGE" and err.value.status == 422


def test_100_megapixels_in_pillows_warn_only_band_is_refused():
    # Pillow only warns between 89.5 and 179 MP; pixelpipe's cap is 40 MP.
    with pytest.raises(ImageTooLarge):
        probe(images.png_header_only(10000, 10000), Limits())


def test_zlib_bomb_is_refused_from_its_header():
    data = images.png_zlib_bomb(12000, 12000)
    assert len(data) < 300_000
    with pytest.raises(ImageTooLarge):
        decode(data, Limits())


@pytest.mark.parametrize("size", [(100000, 1), (1, 100000)])
def test_extreme_aspect_is_refused(size):
    with pytest.raises(ImageTooLarge):
        probe(images.png_header_only(*size), Limits())


def test_zero_dimension_is_refused():
    with pytest.raises((ImageCorrupt, ImageTooLarge)) as err:
        decode(images.png_zero_size(), Limits())
    assert err.value.status == 422


def test_huge_ztxt_chunk_is_a_422_not_a_crash():
    with pytest.raises(ImageTooLarge) as err:
        decode(images.png_huge_ztxt(50), Limits(max_bytes=200 * 1024 * 1024))
    assert "metadata" in err.value.message


def test_text_chunks_over_64mb_in_total_are_refused():
    with pytest.raises(ImageTooLarge):
        decode(images.png_many_text_chunks(70), Limits(max_bytes=200 * 1024 * 1024))


def test_truncated_jpeg_is_corrupt():
    data = images.truncated_jpeg()
    probe(data, Limits())  # the header is fine ...
    with pytest.raises(ImageCorrupt) as err:  # ... only a full decode finds the damage
        decode(data, Limits())
    assert err.value.code == "IMAGE_CORRUPT"


@pytest.mark.parametrize("make", [images.png_bad_crc, images.png_garbage_stream])
def test_damaged_png_is_corrupt(make):
    with pytest.raises(ImageCorrupt):
        decode(make(), Limits())


def test_frame_count_bomb_is_refused_quickly():
    data = images.tiny_frames_gif(300)
    assert len(data) < 25_000
    with pytest.raises(ImageTooLarge) as err:
        probe(data, Limits())
    assert "300 frames" in err.value.message


def test_frames_times_pixels_over_budget_is_refused():
    data = images.animated_gif(frames=8, width=120, height=90)
    probe(data, Limits(max_total_pixels=8 * 120 * 90))
    with pytest.raises(ImageTooLarge) as err:
        probe(data, Limits(max_total_pixels=8 * 120 * 90 - 1))
    assert "across all frames" in err.value.message


@pytest.mark.parametrize("data", [images.svg_with_script(), images.html_page(), b"hello world"])
def test_markup_and_text_are_unsupported(data):
    with pytest.raises(UnsupportedMediaType) as err:
        probe(data, Limits())
    assert err.value.status == 415


@pytest.mark.parametrize("name", sorted(images.refused_formats()))
def test_formats_off_the_allow_list_are_unsupported(name):
    data = images.refused_formats()[name]
    with pytest.raises(UnsupportedMediaType):
        probe(data, Limits())


def test_allow_list_is_a_setting():
    with pytest.raises(UnsupportedMediaType):
        probe(images.webp(), Limits(formats=frozenset({"jpeg", "png"})))


def test_byte_cap():
    data = images.jpeg()
    with pytest.raises(PayloadTooLarge):
        probe(data, Limits(max_bytes=len(data) - 1))


def test_polyglot_trailer_never_reaches_an_output():
    data = images.jpeg_html_polyglot()
    out = run(data, Chain.of(Step("invert")))
    assert images.POLYGLOT_MARKER not in out.data and b"PK\x03\x04" not in out.data
    assert out.format == "jpeg"


def test_orientation_is_applied_and_metadata_dropped():
    data = images.jpeg_with_metadata(orientation=6, width=400, height=300)
    info = probe(data, Limits())
    assert info.orientation == 6 and info.oriented_size == (300, 400)
    picture, _ = decode(data, Limits())
    assert picture.size == (300, 400)
    # The red marker was top-left as stored; orientation 6 (rotate 90 CW to view) puts it top-right.
    r, g, b = picture.image.getpixel((300 - 5, 5))
    assert r > 200 and g < 60 and b < 60
    for fmt in ("jpeg", "png", "webp", "avif"):
        out = run(data, Chain(steps=(Step("invert"),), format=fmt))
        assert b"PixelCam" not in out.data and b"xmp-marker" not in out.data, fmt
        assert b"Exif\x00\x00" not in out.data and b"eXIf" not in out.data, fmt
        reopened = Image.open(io.BytesIO(out.data))
        assert not reopened.getexif(), fmt
        assert reopened.size == (300, 400), fmt


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (images.cmyk_jpeg, "RGB"),
        (images.png_16bit_gray, "L"),
        (images.png_1bit, "L"),
        (images.png_palette_transparent, "RGBA"),
        (images.png_la, "LA"),
        (images.png_rgba, "RGBA"),
    ],
)
def test_unusual_modes_become_working_modes(make, mode):
    picture, _ = decode(make(), Limits())
    assert picture.image.mode == mode
    for op in ("resize", "blur", "sepia", "watermark", "rotate"):
        params = {"resize": {"width": 50}, "watermark": {"text": "x"}, "rotate": {"angle": 33}}
        out = run(make(), Chain.of(Step(op, _parsed(op, params.get(op, {})))))
        assert out.width > 0


def test_sixteen_bit_grey_is_scaled_not_clipped():
    picture, _ = decode(images.png_16bit_gray(), Limits())
    low, high = picture.image.getextrema()
    assert low <= 5 and high >= 250


def test_embedded_profile_is_converted_and_not_kept():
    out = run(images.png_with_icc(), Chain.of(Step("invert")))
    assert "icc_profile" not in Image.open(io.BytesIO(out.data)).info


def test_animation_keeps_frames_and_timing():
    data = images.animated_gif(frames=5)
    picture, _ = decode(data, Limits())
    assert len(picture.frames) == 5 and picture.durations == [40, 50, 60, 70, 80]
    out = run(data, Chain(steps=(Step("flip", {"direction": "horizontal"}),), format="webp"))
    reopened = Image.open(io.BytesIO(out.data))
    assert reopened.n_frames == 5


def _parsed(op: str, raw: dict) -> dict:
    from shared.imaging import REGISTRY

    return REGISTRY[op].parse({"op": op, **raw}, "t")


def test_validation_decodes_jpeg_at_reduced_scale_and_still_finds_damage():
    from shared.imaging.decode import validate

    picture, info = validate(images.jpeg(1600, 1200), Limits())
    assert picture.size == (200, 150) and info.width == 1600  # 1/8: entropy data all read
    for damaged in (images.truncated_jpeg(), images.jpeg(1600, 1200)[:-5000]):
        with pytest.raises(ImageCorrupt):
            validate(damaged, Limits())
    picture, _ = validate(images.png(), Limits())  # other formats: full decode
    assert picture.size == (320, 240)
