"""The upload page: static files served by the app itself (`GET /api/ui`), so it works the
same on Azure and on the local host. No framework, no inline script (the CSP forbids it)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

__all__ = ["asset", "content_security_policy"]

_HERE = Path(__file__).resolve().parent
_TYPES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


@lru_cache(maxsize=8)
def asset(name: str) -> tuple[bytes, str] | None:
    """(content, content type) of a page file, or None if there is no such file."""
    if name not in _TYPES:
        return None
    return (_HERE / name).read_bytes(), _TYPES[name]


def content_security_policy(blob_origin: str) -> str:
    """Scripts and styles from the app only; images may come from the blob endpoint (links)."""
    return (
        f"default-src 'self'; img-src 'self' blob: data: {blob_origin}; "
        "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
