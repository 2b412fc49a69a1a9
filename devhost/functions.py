"""The app's functions, as the Functions host sees them, and how to invoke them.

`FunctionIndex.load()` imports `function_app.py`, calls `app.get_functions()` once (it can only
be called once per app object) and keeps each function's binding JSON and user function.
`invoke` calls a user function the way the Python worker does: keyword arguments named after
the bindings, sync functions on a worker thread, async ones on the event loop, and the value
of a `durableClient` binding as the JSON string the SDK's middleware turns into a client.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from devhost.durable.registry import AppFunctions, app_functions

__all__ = ["FunctionIndex", "FunctionInfo", "HttpRoute"]


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    bindings: tuple[dict[str, Any], ...]
    user_function: Callable[..., Any]

    @property
    def trigger(self) -> dict[str, Any]:
        return next(
            b
            for b in self.bindings
            if b.get("direction", "").upper() == "IN" and b["type"].endswith("Trigger")
        )

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    def binding_names(self, kind: str) -> list[str]:
        return [b["name"] for b in self.bindings if b["type"] == kind]

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


@dataclass(frozen=True)
class HttpRoute:
    function: FunctionInfo
    pattern: re.Pattern[str]
    methods: frozenset[str]
    template: str

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.methods and method.upper() not in self.methods:
            return None
        found = self.pattern.fullmatch(path)
        return {k: v for k, v in found.groupdict().items() if v is not None} if found else None


def _route_pattern(template: str) -> re.Pattern[str]:
    """A Functions route template (`jobs/{id}`, `files/{*path}`, `{id:int?}`) as a regex."""
    out = ""
    for part in re.split(r"(\{[^}]+\})", template.strip("/")):
        if not (part.startswith("{") and part.endswith("}")):
            out += re.escape(part)
            continue
        name = part[1:-1]
        catch_all = name.startswith("*")
        optional = name.endswith("?")
        name = name.lstrip("*").rstrip("?").split(":", 1)[0]
        body = f"(?P<{name}>.+)" if catch_all else f"(?P<{name}>[^/]+)"
        out += f"{body}?" if optional else body
    return re.compile(out)


@dataclass
class FunctionIndex:
    app: Any
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    durable: AppFunctions | None = None
    route_prefix: str = "api"

    @classmethod
    def load(cls, module: str = "function_app", route_prefix: str = "api") -> FunctionIndex:
        app = importlib.import_module(module).app
        registered = app.get_functions()
        index = cls(app, route_prefix=route_prefix)
        for function in registered:
            data = json.loads(function.get_function_json())
            index.functions[function.get_function_name()] = FunctionInfo(
                function.get_function_name(), tuple(data["bindings"]), function.get_user_function()
            )
        index.durable = app_functions(registered)
        return index

    def of_type(self, trigger_type: str) -> list[FunctionInfo]:
        return [f for f in self.functions.values() if f.trigger_type == trigger_type]

    def http_routes(self) -> list[HttpRoute]:
        routes = []
        for function in self.of_type("httpTrigger"):
            trigger = function.trigger
            template = trigger.get("route") or function.name
            methods = frozenset(m.upper() for m in trigger.get("methods") or [])
            full = f"{self.route_prefix}/{template}".strip("/") if self.route_prefix else template
            routes.append(HttpRoute(function, _route_pattern(full), methods, full))
        # Literal routes before parameterised ones, longer before shorter (like ASP.NET).
        routes.sort(key=lambda r: (r.template.count("{"), -len(r.template)))
        return routes

    async def invoke(self, function: FunctionInfo, **arguments: Any) -> Any:
        """Call the user function with its bindings' values, the way the Python worker does."""
        if function.is_async:
            return await function.user_function(**arguments)
        return await asyncio.to_thread(function.user_function, **arguments)


def http_request(
    method: str,
    url: str,
    headers: dict[str, str],
    query: dict[str, str],
    route_params: dict[str, str],
    body: bytes,
) -> func.HttpRequest:
    return func.HttpRequest(
        method, url, headers=headers, params=query, route_params=route_params, body=body
    )
