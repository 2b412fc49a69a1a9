"""The HTTP adapter: from `func.HttpRequest` to plain values, and from results to responses.

`handle(req, work, auth=True)` is all an HTTP trigger calls. It assigns the request id
(a client's `X-Request-Id` if it is sane, else a new one), authenticates the caller, runs
`work`, and turns every outcome into JSON:

* a `PixelpipeError` becomes `{"error": {"code", "message", "requestId", ...}}` with its
  status (401s carry `WWW-Authenticate`, 429/503 carry `Retry-After`);
* anything else is logged with its stack trace and the request id, and the client gets a
  generic 500 with the request id only.

Every response carries `X-Request-Id`, `X-Content-Type-Options: nosniff` and
`Cache-Control: no-store`.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.errors import (
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    PixelpipeError,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from shared.runtime import Runtime, runtime
from shared.security.auth import Principal, www_authenticate

__all__ = ["Call", "Part", "handle", "json_response", "parse_multipart", "read_body"]

log = logging.getLogger("pixelpipe.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass(frozen=True)
class Call:
    """One HTTP call, as the route's work sees it."""

    req: func.HttpRequest
    request_id: str
    rt: Runtime
    principal: Principal | None

    @property
    def caller(self) -> Principal:
        assert self.principal is not None, "route declared auth=False"
        return self.principal

    def json_body(self) -> Any:
        try:
            return json.loads(self.req.get_body() or b"null")
        except ValueError:
            raise InvalidRequest("The body is not valid JSON.") from None


def json_response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    payload = "" if body is None else json.dumps(body, separators=(",", ":"))
    return func.HttpResponse(
        payload,
        status_code=status,
        headers=headers or {},
        mimetype="application/json" if body is not None else None,
    )


def _error_response(error: PixelpipeError, request_id: str) -> func.HttpResponse:
    headers: dict[str, str] = {}
    if isinstance(error, (Unauthenticated, Forbidden)):
        headers["WWW-Authenticate"] = www_authenticate(error)
    if isinstance(error, (RateLimited, Unavailable)):
        headers["Retry-After"] = str(error.retry_after)
    return json_response(
        error.status, {"error": {**error.to_dict(), "requestId": request_id}}, headers
    )


def handle(
    req: func.HttpRequest, work: Callable[[Call], func.HttpResponse], *, auth: bool = True
) -> func.HttpResponse:
    supplied = req.headers.get("x-request-id", "")
    request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
    try:
        rt = runtime()
        principal = rt.auth.authenticate(req.headers.get("authorization")) if auth else None
        response = work(Call(req, request_id, rt, principal))
    except PixelpipeError as exc:
        if exc.status >= 500:
            log.warning("request %s failed: %s %s", request_id, exc.code, exc.message)
        response = _error_response(exc, request_id)
    except (ServiceRequestError, ServiceResponseError) as exc:  # storage unreachable
        log.warning("request %s: storage unreachable: %s", request_id, exc)
        response = _error_response(Unavailable(), request_id)
    except HttpResponseError as exc:
        if exc.status_code in (429, 500, 503):  # storage busy or failing
            log.warning("request %s: storage answered %s", request_id, exc.status_code)
            response = _error_response(Unavailable(), request_id)
        else:
            log.exception("request %s failed unexpectedly", request_id)
            response = _error_response(PixelpipeError(), request_id)
    except Exception:
        log.exception("request %s failed unexpectedly", request_id)
        response = _error_response(PixelpipeError(), request_id)
    response.headers["X-Request-Id"] = request_id
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-store")
    log.info("request %s %s %s -> %s", request_id, req.method, _path(req.url), response.status_code)
    return response


def _path(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]


def read_body(req: func.HttpRequest, limit: int) -> bytes:
    """The request body, refused with 413 when the declared or actual size passes `limit`."""
    declared = req.headers.get("content-length")
    if declared and declared.strip().isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The upload is {declared} bytes; the limit is {limit}.", limit=limit)
    body = req.get_body() or b""
    if len(body) > limit:
        raise PayloadTooLarge(f"The upload is larger than {limit} bytes.", limit=limit)
    return body


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_DISPOSITION_PARAM = re.compile(r'(\w+\*?)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')


def parse_multipart(content_type: str, body: bytes, *, max_parts: int = 16) -> dict[str, Part]:
    """Split a multipart/form-data body into its named parts (the first of each name wins)."""
    match = _BOUNDARY.search(content_type or "")
    if not match:
        raise InvalidRequest("The multipart body names no boundary.")
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts: dict[str, Part] = {}
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise InvalidRequest("The multipart body is malformed.")
    for raw in chunks[1:]:
        if raw.startswith(b"--"):
            break  # the closing delimiter
        if len(parts) >= max_parts:
            raise InvalidRequest("The multipart body has too many parts.")
        chunk = raw[2:] if raw.startswith(b"\r\n") else raw
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise InvalidRequest("A multipart part has no header.")
        data = data[:-2] if data.endswith(b"\r\n") else data
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        params = {
            m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
            for m in _DISPOSITION_PARAM.finditer(headers.get("content-disposition", ""))
        }
        name = params.get("name")
        if name and name not in parts:
            filename = params.get("filename")
            if params.get("filename*", "").lower().startswith("utf-8''"):
                from urllib.parse import unquote

                filename = unquote(params["filename*"][7:])
            parts[name] = Part(name, filename, headers.get("content-type"), data)
    return parts
