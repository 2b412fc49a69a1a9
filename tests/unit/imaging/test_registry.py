"""The registry: declarations, parameter validation with paths, the catalogue, the public API."""

from __future__ import annotations

import pytest

import shared.imaging as imaging
from shared.errors import InvalidSpec
from shared.imaging import REGISTRY, catalogue

REQUIRED_OPS = {
    "resize": {"width", "height", "fit", "upscale"},
    "thumbnail": {"size", "crop"},
    "crop": {"x", "y", "width", "height", "aspect", "gravity"},
    "rotate": {"angle", "background"},
    "flip": {"direction"},
    "grayscale": set(),
    "sepia": set(),
    "invert": set(),
    "auto_contrast": set(),
    "equalize": set(),
    "blur": {"radius"},
    "sharpen": {"radius", "percent", "threshold"},
    "brightness": {"factor"},
    "contrast": {"factor"},
    "saturation": {"factor"},
    "posterize": set(),
    "pixelate": set(),
    "edge_enhance": set(),
    "emboss": set(),
    "watermark": {"text", "position", "opacity", "size"},
    "compress": {"quality", "max_bytes"},
    "convert": {"format"},
}


def test_every_operation_the_issue_names_exists_with_its_parameters():
    for name, params in REQUIRED_OPS.items():
        assert name in REGISTRY, name
        declared = {p.name for p in REGISTRY[name].all_params()}
        assert params <= declared, (name, params - declared)


def test_every_operation_accepts_output_options():
    for op in REGISTRY.values():
        names = {p.name for p in op.all_params()}
        assert {"format", "quality"} <= names, op.name


def test_catalogue_is_json_schema_per_operation():
    entries = catalogue()
    assert next(e["op"] for e in entries) == "resize"
    assert {e["op"] for e in entries} == set(REGISTRY)
    resize = next(e for e in entries if e["op"] == "resize")
    assert resize["params"]["properties"]["fit"]["enum"] == [
        "contain",
        "cover",
        "fill",
        "inside",
        "pad",
    ]
    assert resize["params"]["properties"]["width"]["minimum"] == 1
    assert next(e for e in entries if e["op"] == "rotate")["params"]["required"] == ["angle"]
    for entry in entries:
        assert entry["description"] and entry["params"]["type"] == "object"


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        ({"op": "resize", "width": 0}, "p.width", "between 1 and"),
        ({"op": "resize", "width": 100000}, "p.width", "between 1 and"),
        ({"op": "resize", "width": "800"}, "p.width", "integer"),
        ({"op": "resize", "width": 1.5}, "p.width", "integer"),
        ({"op": "resize", "width": True}, "p.width", "integer"),
        ({"op": "resize", "width": 10, "fit": "stretch"}, "p.fit", "one of"),
        ({"op": "resize", "width": 10, "colour": 1}, "p.colour", "unknown parameter"),
        ({"op": "resize", "width": 10, "quality": 1000}, "p.quality", "between 1 and 100"),
        ({"op": "resize", "width": 10, "format": "bmp"}, "p.format", "one of"),
        ({"op": "blur", "radius": float("nan")}, "p.radius", "between"),
        ({"op": "rotate", "angle": 10, "background": "not-a-colour"}, "p.background", "colour"),
        ({"op": "crop", "aspect": "wide"}, "p.aspect", "aspect ratio"),
        ({"op": "flip", "direction": 3}, "p.direction", "one of"),
    ],
)
def test_bad_parameters_name_their_path(raw, path, fragment):
    with pytest.raises(InvalidSpec) as err:
        REGISTRY[raw["op"]].parse(raw, "p")
    assert err.value.path == path
    assert fragment in err.value.message
    assert err.value.to_dict()["path"] == path and err.value.status == 400


def test_defaults_are_parsed_like_user_values():
    params = REGISTRY["watermark"].parse({"op": "watermark", "text": "hi"}, "p")
    assert params["color"] == (255, 255, 255, 255)
    assert params["position"] == "southeast" and params["opacity"] == 0.5


def test_doc_lines_describe_each_parameter():
    lines = [p.doc() for p in REGISTRY["resize"].params]
    assert lines[0].startswith("width (integer 1-30000, optional): ")
    assert any(
        line.startswith("fit (string contain|cover|fill|inside|pad, default contain)")
        for line in lines
    )


def test_public_surface_is_explicit():
    for name in imaging.__all__:
        assert hasattr(imaging, name), name
    assert sorted(imaging.__all__) == sorted(set(imaging.__all__))
