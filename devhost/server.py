"""The local host's processes: HTTP triggers, queue and blob triggers, Durable Functions.

One *main* process serves HTTP (the app's routes under `/api`, the Durable HTTP API the
SDK's client calls, the dev token issuer under `/.devhost`), runs orchestration episodes and
watches the blob-triggered containers. *Worker* processes (`--workers N`) pull from the
queues and run activities, so the operations of one job really run side by side, as on
several Function instances. With no workers the main process does everything.

HTTP requests are read with the platform's body cap (`FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`,
100 MB by default): a declared Content-Length over it is refused with 413 before anything
is read, and a chunked body is cut off as soon as it passes the cap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost.blobs import BlobWatcher
from devhost.config import PLATFORM_BODY_LIMIT, HostConfig
from devhost.durable.webhooks import add_durable_routes, client_binding
from devhost.functions import FunctionIndex, FunctionInfo, http_request
from devhost.issuer import TokenIssuer
from devhost.queues import QueueListener
from devhost.wakeup import Doorbell, idle_wait

__all__ = ["DevHost"]

log = logging.getLogger("devhost")

FIRST_IDLE_POLL = 0.05  # durable work loops back off from here to host.json's maximum


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@dataclass
class DevHost:
    index: FunctionIndex
    config: HostConfig
    connection_string: str
    base_url: str  # the main process's URL (the durable client's target)
    issuer: TokenIssuer | None = None  # main process only
    body_limit: int = PLATFORM_BODY_LIMIT
    durable: Any = None
    doorbell: Doorbell | None = None  # wake-ups between the host's processes
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.durable is None:
            from devhost.durable.storage import AzuriteDurableHost

            self.durable = AzuriteDurableHost(
                self.connection_string,
                self.index.durable,
                hub=self.config.hub_name,
                on_send=self.doorbell.ring if self.doorbell is not None else None,
            )
        self.client_json = client_binding(self.base_url, self.config.hub_name)
        self.routes = self.index.http_routes()

    # -- invoking functions --------------------------------------------------------------------

    def _arguments(self, function: FunctionInfo, trigger_value: Any) -> dict[str, Any]:
        arguments = {function.trigger["name"]: trigger_value}
        for name in function.binding_names("durableClient"):
            arguments[name] = self.client_json
        return arguments

    async def invoke(self, function: FunctionInfo, trigger_value: Any) -> Any:
        return await asyncio.wait_for(
            self.index.invoke(function, **self._arguments(function, trigger_value)),
            timeout=self.config.function_timeout,
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=self.body_limit)
        if self.issuer is not None:
            app.router.add_post("/.devhost/token", self._token)
            app.router.add_get("/.devhost/jwks.json", self._jwks)
            app.router.add_get("/", self._home)
        add_durable_routes(app, self.durable)
        app.router.add_route("*", "/{path:.*}", self._http_trigger)
        return app

    async def _home(self, request: web.Request) -> web.Response:
        ui = any(r.template == f"{self.index.route_prefix}/ui" for r in self.routes)
        if ui:
            raise web.HTTPFound(f"/{self.index.route_prefix}/ui")
        return web.json_response(
            {"name": "pixelpipe local host", "api": f"{self.base_url}/{self.index.route_prefix}"}
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        assert self.issuer is not None
        return web.json_response(self.issuer.jwks())

    async def _token(self, request: web.Request) -> web.Response:
        """POST /.devhost/token {"sub": "alice", "scopes": ["Images.Process"]} (both optional)."""
        assert self.issuer is not None
        try:
            body = await request.json() if request.can_read_body else {}
        except (ValueError, UnicodeDecodeError):
            return _error(400, "INVALID_REQUEST", "The body must be JSON.")
        body = body if isinstance(body, dict) else {}
        sub = body.get("sub") or "dev-user"
        scopes = body.get("scopes")
        roles = body.get("roles")
        if (
            not isinstance(sub, str)
            or (scopes is not None and not isinstance(scopes, list))
            or (roles is not None and not isinstance(roles, list))
        ):
            return _error(400, "INVALID_REQUEST", "sub is a string; scopes and roles lists.")
        expires_in = 3600
        token = self.issuer.token(sub, scopes=scopes, roles=roles, expires_in=expires_in)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
        )

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        declared = request.content_length
        if declared is not None and declared > self.body_limit:
            return _error(
                413,
                "PAYLOAD_TOO_LARGE",
                f"The request body is over the host's {self.body_limit}-byte limit.",
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > self.body_limit:
                return _error(
                    413,
                    "PAYLOAD_TOO_LARGE",
                    f"The request body is over the host's {self.body_limit}-byte limit.",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _http_trigger(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lstrip("/")
        for route in self.routes:
            params = route.match(request.method, path)
            if params is not None:
                break
        else:
            return _error(404, "NOT_FOUND", "No function serves this route.")
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        started = time.perf_counter()
        headers = dict(request.headers)
        req = http_request(
            request.method, str(request.url), headers, dict(request.query), params, body
        )
        try:
            response: func.HttpResponse = await self.invoke(route.function, req)
        except Exception:
            log.exception("function %s failed", route.function.name)
            return _error(500, "INTERNAL", "The function failed.")
        out = web.Response(status=response.status_code, body=response.get_body())
        for key, value in response.headers.items():
            out.headers[key] = value
        if response.mimetype and "Content-Type" not in response.headers:
            out.content_type = response.mimetype
            if response.charset and response.mimetype.startswith(("text/", "application/json")):
                out.charset = response.charset
        log.info(
            json.dumps(
                {
                    "function": route.function.name,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "requestId": response.headers.get("X-Request-Id"),
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                }
            )
        )
        return out

    # -- background triggers -------------------------------------------------------------------

    def start_queue_listeners(self, stop: asyncio.Event) -> None:
        service = QueueServiceClient.from_connection_string(self.connection_string)
        for function in self.index.of_type("queueTrigger"):

            async def handler(message: func.QueueMessage, f: FunctionInfo = function) -> Any:
                return await self.invoke(f, message)

            listener = QueueListener(
                service,
                function.trigger["queueName"],
                handler,
                self.config.queues,
                name=function.name,
                doorbell=self.doorbell,
            )
            self.tasks.append(asyncio.create_task(listener.run(stop)))

    def start_blob_watchers(self, stop: asyncio.Event) -> None:
        blobs = BlobServiceClient.from_connection_string(self.connection_string)
        tables = TableServiceClient.from_connection_string(self.connection_string)
        for function in self.index.of_type("blobTrigger"):

            async def handler(stream: func.InputStream, f: FunctionInfo = function) -> Any:
                return await self.invoke(f, stream)

            watcher = BlobWatcher(
                blobs, tables, function.trigger["path"], handler, name=function.name
            )
            self.tasks.append(asyncio.create_task(watcher.run(stop)))

    def start_durable_loop(
        self, stop: asyncio.Event, *, orchestrations: bool, activities: bool
    ) -> None:
        names = getattr(self.durable, "names", None)
        if orchestrations:
            queue = names.control_queue if names is not None else None
            self.tasks.append(
                asyncio.create_task(self._loop(stop, self.durable.process_orchestrations, queue))
            )
        if activities:
            queue = names.workitem_queue if names is not None else None
            self.tasks.append(
                asyncio.create_task(self._loop(stop, self.durable.process_activities, queue))
            )

    async def _loop(self, stop: asyncio.Event, step: Any, queue: str | None) -> None:
        max_idle = max(FIRST_IDLE_POLL, self.config.durable_max_poll)
        idle = FIRST_IDLE_POLL
        while not stop.is_set():
            try:
                done = await asyncio.to_thread(step)
            except Exception:
                log.exception("durable work loop step failed; retrying")
                done = 0
            if done:
                idle = FIRST_IDLE_POLL
                continue
            if await idle_wait(self.doorbell, queue, stop, idle):
                idle = FIRST_IDLE_POLL
                continue
            idle = min(idle * 2, max_idle)

    async def wait(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await _close_durable_client_session()


async def _close_durable_client_session() -> None:
    """The durable SDK keeps one aiohttp session per process for its client and has no
    shutdown hook (its own words); a stopping host closes it, so the process exits without
    'Unclosed client session' noise."""
    try:
        from azure.durable_functions.models.utils import http_utils

        await http_utils._close_session()
    except (ImportError, AttributeError):
        pass
