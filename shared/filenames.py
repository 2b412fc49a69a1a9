"""File names a client sent, made safe: the one place that decides what survives of them.

`base_name` keeps the name a person would recognise (no directories, no control
characters); `ascii_name` is the conservative form for places that only take plain ASCII
(a blob name, the fallback `filename=` of a Content-Disposition header).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["ascii_name", "base_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def base_name(name: str | None, default: str) -> str:
    """The last path component, without control characters or leading/trailing dots and
    spaces, at most 150 characters; `default` if nothing is left."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip(". ")
    return base[:150] or default


def ascii_name(name: str, default: str, limit: int = 150) -> str:
    """Letters, digits, '.', '_' and '-' only (accents dropped, other runs become '_')."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _UNSAFE.sub("_", plain).strip("._")[:limit] or default
