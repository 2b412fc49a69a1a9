"""The generated docs are current (regenerate with `python -m shared.docs`)."""

from __future__ import annotations

from pathlib import Path

from shared.docs import operations_markdown, settings_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_operations_doc_is_current():
    text = (ROOT / "docs" / "operations.md").read_text()
    assert text == operations_markdown(), "run: python -m shared.docs"
    assert "### `resize`" in text and "| `web` |" in text


def test_settings_doc_is_current():
    text = (ROOT / "docs" / "settings.md").read_text()
    assert text == settings_markdown(), "run: python -m shared.docs"
    assert "`PIXELPIPE_MAX_FRAME_PIXELS`" in text


def test_openapi_doc_is_current_and_covers_every_route():
    import json

    from shared.docs import openapi_json
    from tests.support.app import registered

    text = (ROOT / "docs" / "openapi.json").read_text()
    assert text == openapi_json(), "run: python -m shared.docs"
    paths = set(json.loads(text)["paths"])
    routes = {
        f"/api/{f['bindings'][0]['route']}"
        for f in registered().values()
        if f["bindings"][0]["type"] == "httpTrigger"
    }
    undocumented = {r for r in routes - paths if not r.startswith(("/api/ui", "/api/openapi"))}
    assert not undocumented
