"""Calling the real HTTP functions with real `func.HttpRequest` objects, and storage inventories."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from shared.functions import api
from shared.runtime import Runtime
from shared.storage.clients import CONTAINERS, QUEUES, TABLES

ROUTES = {
    "health": api.health,
    "operations": api.operations,
    "jobs": api.jobs,
    "job": api.job_item,
    "output": api.job_output,
    "uploads": api.uploads,
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        return self.json().get("error", {}).get("code") if self.body else None


def call(
    route: str,
    method: str = "GET",
    *,
    body: bytes = b"",
    token: str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
) -> Reply:
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    path = {"job": "jobs/{id}", "output": "jobs/{id}/outputs/{ref}"}.get(route, route)
    for key, value in (route_params or {}).items():
        path = path.replace("{" + key + "}", value)
    request = func.HttpRequest(
        method,
        f"http://127.0.0.1:7071/api/{path}",
        headers=all_headers,
        params=params or {},
        route_params=route_params or {},
        body=body,
    )
    response = ROUTES[route](request)
    headers = dict(response.headers)
    if response.mimetype and "Content-Type" not in headers:  # as the Functions host does
        headers["Content-Type"] = response.mimetype
    return Reply(response.status_code, headers, response.get_body())


def multipart(
    fields: dict[str, tuple[str | None, bytes, str | None]],
    boundary: str = "pixelpipe-boundary-7d3f",
) -> tuple[bytes, str]:
    """(body, content type) for fields {name: (filename, data, content type)}."""
    out = b""
    for name, (filename, data, ctype) in fields.items():
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def inventory(rt: Runtime) -> dict[str, Any]:
    """Every blob, table row and queue message (counts) in pixelpipe's storage."""
    blobs = {
        name: sorted(b.name for b in rt.clients.container(name).list_blobs()) for name in CONTAINERS
    }
    rows = {
        name: sorted(
            (e["PartitionKey"], e["RowKey"]) for e in rt.clients.table(name).list_entities()
        )
        for name in TABLES
    }
    queues = {
        name: rt.clients.queue(name).get_queue_properties().approximate_message_count
        for name in QUEUES
    }
    return {"blobs": blobs, "rows": rows, "queues": queues}


def is_empty(state: dict[str, Any]) -> bool:
    return (
        not any(state["blobs"].values())
        and not any(state["rows"].values())
        and not any(state["queues"].values())
    )
