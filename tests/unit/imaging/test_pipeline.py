"""The pipeline end to end: chains, output formats and defaults, the planner, run_many."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.errors import ImageCorrupt, OperationTimeout, TargetSizeUnreachable
from shared.imaging import Chain, Limits, decode, plan, probe, run, run_many
from shared.imaging.formats import output_format_for, sniff
from shared.jobs.spec import parse_spec
from tests.fixtures import images


def chain(*raw: dict, **options) -> Chain:
    spec = parse_spec({"operations": [{**raw[0], "then": list(raw[1:]), **options}]})
    return spec.operations[0].chain


def reopen(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "gif", "avif"])
def test_every_output_format_and_its_content_type(fmt):
    out = run(images.jpeg(), chain({"op": "resize", "width": 160}, format=fmt))
    assert out.format == fmt
    assert sniff(out.data[:32])[0] == fmt
    assert out.content_type == f"image/{fmt}"
    assert reopen(out.data).size == (out.width, out.height) == (160, 120)


def test_default_format_follows_the_source_and_gif_becomes_png():
    assert run(images.webp(), chain({"op": "invert"})).format == "webp"
    assert run(images.png(), chain({"op": "invert"})).format == "png"
    assert output_format_for("gif") == "png"
    out = run(images.animated_gif(frames=4), chain({"op": "invert"}))
    assert out.format == "png" and out.frames == 4
    assert reopen(out.data).n_frames == 4  # APNG keeps the animation


def test_jpeg_defaults_progressive_and_optimised():
    out = run(images.jpeg(), chain({"op": "invert"}))
    im = reopen(out.data)
    assert im.info.get("progressive") or im.info.get("progression")
    assert out.quality == 85


def test_jpeg_output_flattens_transparency_onto_white():
    out = run(images.png_rgba(), chain({"op": "invert"}, format="jpeg"))
    assert reopen(out.data).mode == "RGB"


def test_animated_to_jpeg_takes_the_first_frame():
    out = run(images.animated_gif(frames=3), chain({"op": "invert"}, format="jpeg"))
    assert out.frames == 1


def test_gif_output_keeps_transparency():
    out = run(images.png_palette_transparent(), chain({"op": "flip"}, format="gif"))
    assert "transparency" in reopen(out.data).info


def test_png_quality_quantises_to_a_palette():
    lossless = run(images.png(), chain({"op": "invert"}))
    lossy = run(images.png(), chain({"op": "invert"}, quality=60))
    assert reopen(lossy.data).mode == "P" and len(lossy.data) < len(lossless.data)


def test_quality_changes_size():
    small = run(images.jpeg(), chain({"op": "invert"}, quality=30))
    large = run(images.jpeg(), chain({"op": "invert"}, quality=95))
    assert len(small.data) < len(large.data) * 0.6


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_compress_max_bytes_finds_the_best_quality_that_fits(fmt):
    source = images.jpeg(800, 600)
    full = run(source, chain({"op": "compress"}, format=fmt))
    target = len(full.data) // 2
    out = run(source, chain({"op": "compress", "max_bytes": target}, format=fmt))
    assert len(out.data) <= target
    assert out.quality is not None and out.quality < full.quality
    one_more = run(source, chain({"op": "compress", "quality": out.quality + 1}, format=fmt))
    assert len(one_more.data) > target  # the search found the highest fitting quality


def test_compress_max_bytes_unreachable_is_a_clear_error():
    with pytest.raises(TargetSizeUnreachable) as err:
        run(images.jpeg(800, 600), chain({"op": "compress", "max_bytes": 1024}))
    assert err.value.code == "TARGET_SIZE_UNREACHABLE" and err.value.status == 422


def test_then_chain_runs_in_order():
    out = run(
        images.jpeg(),
        chain(
            {"op": "crop", "x": 0, "y": 0, "width": 200, "height": 100},
            {"op": "rotate", "angle": 90},
            {"op": "resize", "width": 50},
        ),
    )
    assert (out.width, out.height) == (50, 100)


def test_planner_shrinks_jpeg_on_load_only_when_safe():
    data = images.jpeg(2400, 1600)
    info = probe(data, Limits())
    hints = plan(info, [chain({"op": "thumbnail", "size": 150})])
    assert hints.min_size is not None and hints.min_size[0] <= 1200
    picture, _ = decode(data, Limits(), hints)
    # 2400x1600 -> a 150x100 thumbnail: decoded at 1/8, still twice the thumbnail's size.
    assert picture.size == (300, 200)
    # A grayscale before the resize commutes with scaling: still shrinks.
    assert plan(info, [chain({"op": "grayscale"}, {"op": "resize", "width": 200})]).min_size
    # A blur before the resize does not (its radius is in source pixels).
    assert plan(info, [chain({"op": "blur"}, {"op": "resize", "width": 200})]).min_size is None
    # Several chains: the largest need wins.
    both = plan(info, [chain({"op": "thumbnail", "size": 100}), chain({"op": "invert"})])
    assert both.min_size is None
    assert plan(probe(images.png(), Limits()), [chain({"op": "thumbnail"})]).min_size is None


def test_shrink_on_load_gives_the_same_picture():
    data = images.jpeg(2400, 1600, quality=95)
    target = chain({"op": "resize", "width": 300})
    info = probe(data, Limits())
    shrunk, _ = decode(data, Limits(), plan(info, [target]))
    full, _ = decode(data, Limits())
    assert shrunk.size[0] < full.size[0]
    fast = shrunk.image.resize((300, 200), Image.Resampling.LANCZOS)
    slow = full.image.resize((300, 200), Image.Resampling.LANCZOS)
    diffs = sorted(abs(a - b) for a, b in zip(fast.tobytes(), slow.tobytes(), strict=True))
    assert sum(diffs) / len(diffs) < 2  # on average the same picture
    assert diffs[int(len(diffs) * 0.99)] < 16  # and no region is different


def test_planner_decodes_luma_only_for_grayscale_chains():
    info = probe(images.jpeg(), Limits())
    assert plan(info, [chain({"op": "grayscale"})]).grayscale
    assert plan(info, [chain({"op": "resize", "width": 100}, {"op": "grayscale"})]).grayscale
    assert not plan(info, [chain({"op": "sepia"}, {"op": "grayscale"})]).grayscale
    assert not plan(info, [chain({"op": "grayscale"}), chain({"op": "invert"})]).grayscale
    out = run(images.jpeg(), chain({"op": "grayscale"}))
    assert reopen(out.data).mode == "L"


def test_run_many_shares_one_decode_and_isolates_failures():
    chains = [
        chain({"op": "resize", "width": 100}),
        chain({"op": "grayscale"}),
        chain({"op": "crop", "x": 5000, "y": 0, "width": 5, "height": 5}),
        chain({"op": "blur", "radius": 3}, format="webp"),
    ]
    results = run_many(images.jpeg(), chains, threads=2)
    assert [type(r).__name__ for r in results] == [
        "Encoded",
        "Encoded",
        "OperationFailed",
        "Encoded",
    ]
    single = run(images.jpeg(), chains[3])
    assert results[3].data == single.data


def test_run_many_raises_for_an_undecodable_source():
    with pytest.raises(ImageCorrupt):
        run_many(images.truncated_jpeg(), [chain({"op": "invert"})])


def test_deadline_stops_between_steps():
    with pytest.raises(OperationTimeout) as err:
        run(images.jpeg(), chain({"op": "blur"}, {"op": "blur"}), timeout=1e-9)
    assert err.value.code == "TIMEOUT"


def test_chain_round_trips_through_json():
    original = chain(
        {"op": "rotate", "angle": 12.5, "background": "#ff000080"},
        {"op": "watermark", "text": "hi"},
        format="webp",
        quality=70,
    )
    import json

    again = Chain.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
