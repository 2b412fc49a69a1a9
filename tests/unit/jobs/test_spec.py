"""The job spec parser: shapes, names, presets, caps and error paths (SECURITY.md 23, 24)."""

from __future__ import annotations

import pytest

from shared.errors import InvalidSpec, TooManyOperations
from shared.imaging import PRESETS
from shared.jobs.spec import JobSpec, parse_spec, parse_spec_text

API_EXAMPLE = {
    "operations": [
        {"op": "grayscale"},
        {"op": "resize", "width": 800},
        {"op": "thumbnail", "size": 256, "format": "webp", "quality": 80},
        {
            "name": "hero",
            "op": "resize",
            "width": 1600,
            "then": [{"op": "sharpen"}],
            "format": "avif",
        },
    ],
    "preset": "web",
    "webhook": {"url": "https://example.org/hook"},
}


def test_the_api_example_parses():
    spec = parse_spec(API_EXAMPLE)
    names = [o.name for o in spec.operations]
    assert names == ["grayscale", "resize", "thumbnail", "hero", "large", "medium", "thumb"]
    assert [o.index for o in spec.operations] == list(range(7))
    hero = spec.operations[3]
    assert hero.op == "resize" and [s.op for s in hero.chain.steps] == ["resize", "sharpen"]
    assert hero.chain.format == "avif"
    assert spec.operations[2].chain.quality == 80
    assert spec.webhook_url == "https://example.org/hook"


def test_default_names_are_made_unique():
    spec = parse_spec(
        {
            "operations": [
                {"op": "resize", "width": 1},
                {"op": "resize", "width": 2},
                {"name": "resize-3", "op": "invert"},
                {"op": "resize", "width": 3},
            ]
        }
    )
    assert [o.name for o in spec.operations] == ["resize", "resize-2", "resize-3", "resize-4"]


def test_duplicate_and_unsafe_names_are_refused():
    with pytest.raises(InvalidSpec) as err:
        parse_spec({"operations": [{"name": "a", "op": "invert"}, {"name": "a", "op": "flip"}]})
    assert err.value.path == "operations[1].name"
    for bad in ("../../etc/passwd", "a b", "", "x" * 65, "ünï", 5, ".hidden"):
        with pytest.raises(InvalidSpec) as err:
            parse_spec({"operations": [{"name": bad, "op": "invert"}]})
        assert err.value.path == "operations[0].name"


def test_no_spec_means_the_default_preset():
    spec = parse_spec(None, default_preset="thumbnails")
    assert [o.name for o in spec.operations] == ["thumb-64", "thumb-128", "thumb-256", "thumb-512"]
    assert parse_spec_text("  ").preset == "web"


def test_every_preset_parses():
    for name in PRESETS:
        spec = parse_spec({"preset": name})
        assert spec.operations and spec.preset == name


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"operations": [{"op": "resize", "width": 0}]}, "operations[0].width"),
        (
            {
                "operations": [
                    {"op": "resize", "width": 10},
                    {"op": "resize", "width": 100000, "height": 100000},
                ]
            },
            "operations[1].width",
        ),
        (
            {
                "operations": [
                    {"op": "invert"},
                    {"op": "invert"},
                    {"op": "resize", "width": 5, "quality": 1000},
                ]
            },
            "operations[2].quality",
        ),
        ({"operations": [{"op": "nope"}]}, "operations[0].op"),
        ({"operations": [{"width": 3}]}, "operations[0].op"),
        (
            {"operations": [{"op": "resize", "width": 3, "then": [{"op": "blur", "radius": -1}]}]},
            "operations[0].then[0].radius",
        ),
        (
            {"operations": [{"op": "resize", "width": 3, "then": [{"op": "x"}]}]},
            "operations[0].then[0].op",
        ),
        (
            {"operations": [{"op": "invert", "then": [{"op": "invert", "name": "n"}]}]},
            "operations[0].then[0].name",
        ),
        ({"operations": [{"op": "invert", "then": "blur"}]}, "operations[0].then"),
        ({"operations": ["invert"]}, "operations[0]"),
        ({"operations": {"op": "invert"}}, "operations"),
        ({"operations": []}, "operations"),
        ({"preset": "nope"}, "preset"),
        ({"operation": []}, "operation"),
        ({"webhook": {"url": "ftp://x"}, "preset": "web"}, "webhook.url"),
        ({"webhook": {"url": "https://user:pw@example.org"}, "preset": "web"}, "webhook.url"),
        ({"webhook": "https://example.org", "preset": "web"}, "webhook"),
        ([1, 2], "spec"),
    ],
)
def test_errors_name_the_offending_path(raw, path):
    with pytest.raises(InvalidSpec) as err:
        parse_spec(raw)
    assert err.value.path == path
    assert err.value.code == "INVALID_SPEC"
    assert path in err.value.message


def test_bad_json_text():
    with pytest.raises(InvalidSpec) as err:
        parse_spec_text("{not json")
    assert err.value.path == "spec"


def test_operation_count_is_capped():
    with pytest.raises(TooManyOperations) as err:
        parse_spec({"operations": [{"op": "invert"}] * 1000})
    assert err.value.code == "TOO_MANY_OPERATIONS" and err.value.status == 400
    parse_spec({"operations": [{"op": "invert"}] * 20})
    with pytest.raises(TooManyOperations):
        parse_spec({"operations": [{"op": "invert"}] * 18, "preset": "web"})
    parse_spec({"operations": [{"op": "invert"}] * 25}, max_operations=25)


def test_chain_length_is_capped():
    ok = {"op": "invert", "then": [{"op": "flip"}] * 9}
    parse_spec({"operations": [ok]})
    with pytest.raises(TooManyOperations) as err:
        parse_spec({"operations": [{"op": "invert", "then": [{"op": "flip"}] * 10}]})
    assert err.value.details["path"] == "operations[0].then"


def test_spec_round_trips():
    spec = parse_spec(API_EXAMPLE)
    assert JobSpec.from_dict(spec.to_dict()) == spec
