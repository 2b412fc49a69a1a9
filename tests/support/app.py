"""The app's registered functions, read once (`get_functions()` works once per app object)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import function_app


@lru_cache(maxsize=1)
def registered() -> dict[str, dict[str, Any]]:
    """Function name -> its function.json (`{"bindings": [...]}`)."""
    return {
        f.get_function_name(): json.loads(f.get_function_json())
        for f in function_app.app.get_functions()
    }
