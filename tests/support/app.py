"""The app's registered functions, read once (`get_functions()` works once per app object)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import function_app


@lru_cache(maxsize=1)
def _functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def registered() -> dict[str, dict[str, Any]]:
    """Function name -> its function.json (`{"bindings": [...]}`)."""
    return {name: json.loads(f.get_function_json()) for name, f in _functions().items()}


def user_function(name: str) -> Callable[..., Any]:
    """What the Python worker calls: the user function with the SDK's wrappers (for a
    durableClient binding, the middleware that builds the client from its JSON)."""
    return _functions()[name].get_user_function()  # type: ignore[no-any-return]
