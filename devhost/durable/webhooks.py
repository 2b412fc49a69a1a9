"""The Durable Functions HTTP API, served by aiohttp over an `AzuriteDurableHost`.

The Python SDK's `DurableOrchestrationClient` does everything over HTTP: it is built from the
JSON the host passes as the value of a `durableClient` binding (`client_binding` makes it) and
calls URLs under that JSON's `rpcBaseUrl`. `add_durable_routes` serves them, with the status
codes and bodies the Durable extension's `HttpApiHandler` returns and the SDK interprets:

    POST   {prefix}/orchestrators/{name}[/{id}]     start_new         202 + management payload,
                                                    Location; 400 {"Message", "ExceptionMessage"}
                                                    (unknown orchestrator, bad id, bad JSON);
                                                    409 {"Message": "... already exists ..."}
    POST   {prefix}/instances/{id}/raiseEvent/{e}   raise_event       202; 404; 410; 400 (not JSON)
    GET    {prefix}/instances/{id}                  get_status        202 + Location (Pending,
                                                    Running), 200 (finished; Failed is 500 with
                                                    returnInternalServerErrorOnFailure=true),
                                                    404 with an empty body
    GET    {prefix}/instances/                      get_status_all/by 200 + list (filters:
                                                    createdTimeFrom/To, runtimeStatus,
                                                    instanceIdPrefix, showInput; no paging)
    POST   {prefix}/instances/{id}/terminate        terminate         202; 404; 410
    POST   {prefix}/instances/{id}/restart          restart           202 + management payload
    DELETE {prefix}/instances/{id}                  purge             200 {"instancesDeleted": 1};
                                                    404; 412 (not finished)
    DELETE {prefix}/instances/                      purge by filter   200 {"instancesDeleted": n};
                                                    404 when none; 400 without createdTimeFrom
    POST   {prefix}/instances/{id}/suspend|resume|rewind             501 (not implemented)

Payloads: the Python client double-encodes what it posts (it sends the JSON *text* of the
input or event data as a JSON string). The handlers unwrap one level: a body that is a JSON
string holding JSON text is taken as that text; any other JSON body is taken as is. So the
orchestrator sees what the client passed, as `memory.MemoryHost` does. `?version=` is
accepted and ignored (devhost has no orchestration versioning).

Storage calls are synchronous; every handler runs them with `asyncio.to_thread`, so the
event loop never blocks on Azurite.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from devhost.durable.instances import (
    FINISHED,
    InstanceExistsError,
    InstanceGoneError,
    InstanceNotFoundError,
)
from devhost.durable.replay import RuntimeStatus
from devhost.durable.storage import AzuriteDurableHost

__all__ = [
    "CONNECTION_NAME",
    "DEFAULT_PREFIX",
    "add_durable_routes",
    "client_binding",
    "management_urls",
    "parse_payload",
]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "/runtime/webhooks/durabletask"
CONNECTION_NAME = "Storage"
"""The connection named in management URLs (the extension's default connection name)."""

_INSTANCE_PLACEHOLDER = "INSTANCEID"
_RUNNING = frozenset({RuntimeStatus.PENDING, RuntimeStatus.RUNNING, RuntimeStatus.CONTINUED_AS_NEW})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def client_binding(
    base_url: str,
    hub: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    connection: str = CONNECTION_NAME,
) -> str:
    """The JSON text the host passes as a `durableClient` binding's value, for the routes
    `add_durable_routes` serves at `base_url` (e.g. "http://127.0.0.1:7071"):
    `DurableOrchestrationClient(client_binding(...))` talks to them."""
    base = base_url.rstrip("/") + prefix
    creation = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
    return json.dumps(
        {
            "taskHubName": hub,
            "connectionName": None,
            "creationUrls": {
                "createNewInstancePostUri": f"{creation}?",
                "createAndWaitOnNewInstancePostUri": (
                    f"{creation}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&"
                ),
            },
            "managementUrls": management_urls(
                base, _INSTANCE_PLACEHOLDER, hub, connection, rewind=True
            ),
            "baseUrl": base,
            "requiredQueryStringParameters": "",
            "rpcBaseUrl": f"{base}/",
        }
    )


def management_urls(
    base: str, instance_id: str, hub: str, connection: str, *, rewind: bool = False
) -> dict[str, str]:
    """The extension's HTTP management payload for `instance_id` under `base` (the webhook
    base URL, prefix included)."""
    instance = f"{base}/instances/{quote(instance_id, safe='')}"
    query = f"taskHub={quote(hub, safe='')}&connection={quote(connection, safe='')}"
    urls = {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{query}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{instance}?{query}",
        "restartPostUri": f"{instance}/restart?{query}",
        "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
    }
    if not rewind:  # the check-status response leaves it out
        del urls["rewindPostUri"]
    return urls


def parse_payload(body: str) -> str | None:
    """The JSON text of a posted input or event payload (None for an empty body): a JSON
    string holding JSON text is unwrapped once (the Python client double-encodes), anything
    else is taken as is. Raises ValueError for a body that is not JSON."""
    if not body.strip():
        return None
    value = json.loads(body)
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return json.dumps(value)  # a plain string payload
        return value
    return json.dumps(value, separators=(",", ":"))


def add_durable_routes(
    app: web.Application, host: AzuriteDurableHost, *, prefix: str = DEFAULT_PREFIX
) -> None:
    """Serve the Durable HTTP API for `host` under `prefix` (see the module docstring)."""
    api = _DurableApi(host, prefix)
    router = app.router
    router.add_post(prefix + "/orchestrators/{functionName}", api.start)
    router.add_post(prefix + "/orchestrators/{functionName}/", api.start)
    router.add_post(prefix + "/orchestrators/{functionName}/{instanceId}", api.start)
    for path in (prefix + "/instances", prefix + "/instances/"):
        router.add_get(path, api.list_instances)
        router.add_delete(path, api.purge_instances)
    router.add_get(prefix + "/instances/{instanceId}", api.get_status)
    router.add_delete(prefix + "/instances/{instanceId}", api.purge)
    router.add_post(prefix + "/instances/{instanceId}/raiseEvent/{eventName}", api.raise_event)
    router.add_post(prefix + "/instances/{instanceId}/{operation}", api.operation)


def _guarded(handler: Handler) -> Handler:
    """Answer unexpected exceptions as the extension does: 500 with the error."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            logger.exception("durable API: %s %s failed", request.method, request.path)
            return _error(500, "Something went wrong while processing your request", exc)

    return guarded


class _DurableApi:
    def __init__(self, host: AzuriteDurableHost, prefix: str) -> None:
        self.host = host
        self.prefix = prefix
        self.start = _guarded(self._start)
        self.raise_event = _guarded(self._raise_event)
        self.get_status = _guarded(self._get_status)
        self.list_instances = _guarded(self._list_instances)
        self.purge = _guarded(self._purge)
        self.purge_instances = _guarded(self._purge_instances)
        self.operation = _guarded(self._operation)

    def _check_status_response(self, request: web.Request, instance_id: str) -> web.Response:
        base = f"{request.url.origin()}{self.prefix}"
        payload = management_urls(base, instance_id, self.host.hub, CONNECTION_NAME)
        return web.json_response(
            payload,
            status=202,
            headers={"Location": payload["statusQueryGetUri"], "Retry-After": "10"},
        )

    async def _start(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["functionName"]
        instance_id = request.match_info.get("instanceId") or None
        try:
            input_json = parse_payload(await request.text())
        except ValueError as exc:
            return _error(400, "Invalid JSON content", exc)
        try:
            started = await asyncio.to_thread(self.host.start_new, name, instance_id, input_json)
        except InstanceExistsError as exc:
            return web.json_response({"Message": str(exc)}, status=409)
        except ValueError as exc:  # unknown orchestrator, invalid instance id
            return _error(400, str(exc), exc)
        return self._check_status_response(request, started)

    async def _raise_event(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instanceId"]
        event_name = request.match_info["eventName"]
        if request.content_type.lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        try:
            data_json = parse_payload(await request.text())
        except ValueError as exc:
            return _error(400, "Invalid JSON content", exc)
        try:
            await asyncio.to_thread(self.host.raise_event, instance_id, event_name, data_json)
        except InstanceNotFoundError:
            return web.Response(status=404)
        except InstanceGoneError:
            return web.Response(status=410)
        return web.Response(status=202)

    async def _get_status(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instanceId"]
        query = request.query
        status = await asyncio.to_thread(
            lambda: self.host.get_status(
                instance_id,
                show_history=_flag(query, "showHistory", default=False),
                show_history_output=_flag(query, "showHistoryOutput", default=False),
                show_input=_flag(query, "showInput", default=True),
            )
        )
        if status is None:
            return web.Response(status=404)
        runtime_status = RuntimeStatus(status["runtimeStatus"])
        headers: dict[str, str] = {}
        code = 200
        if runtime_status in _RUNNING:
            code = 202
            headers = {"Location": str(request.url), "Retry-After": "5"}
        elif runtime_status is RuntimeStatus.FAILED and _flag(
            query, "returnInternalServerErrorOnFailure", default=False
        ):
            code = 500
        return web.json_response(status, status=code, headers=headers)

    async def _list_instances(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        try:
            created_from = _time(query, "createdTimeFrom")
            created_to = _time(query, "createdTimeTo")
        except ValueError as exc:
            return _error(400, str(exc), exc)
        statuses = _statuses(query)
        prefix = query.get("instanceIdPrefix")
        show_input = _flag(query, "showInput", default=True)
        found = await asyncio.to_thread(
            lambda: self.host.query_instances(
                created_from=created_from,
                created_to=created_to,
                statuses=statuses,
                instance_id_prefix=prefix,
                show_input=show_input,
            )
        )
        return web.json_response(found)

    async def _purge(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instanceId"]
        status = await asyncio.to_thread(
            lambda: self.host.get_status(instance_id, show_input=False)
        )
        if status is None:
            return web.Response(status=404)
        runtime_status = RuntimeStatus(status["runtimeStatus"])
        if runtime_status not in FINISHED:
            return web.json_response(
                "Only orchestrations in a terminal state can be purged, but the orchestration "
                f"with instance ID {instance_id} has status {runtime_status}",
                status=412,
            )
        deleted = await asyncio.to_thread(self.host.purge, instance_id)
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": 1})

    async def _purge_instances(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        try:
            created_from = _time(query, "createdTimeFrom")
            created_to = _time(query, "createdTimeTo")
        except ValueError as exc:
            return _error(400, str(exc), exc)
        if created_from is None:
            return web.json_response(
                "Please provide value for 'createdTimeFrom' parameter.", status=400
            )
        statuses = _statuses(query)
        deleted = await asyncio.to_thread(
            lambda: self.host.purge_instances(
                created_from=created_from, created_to=created_to, statuses=statuses
            )
        )
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": deleted})

    async def _operation(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instanceId"]
        operation = request.match_info["operation"].lower()
        if operation == "terminate":
            reason = request.query.get("reason")
            try:
                await asyncio.to_thread(self.host.terminate, instance_id, reason)
            except InstanceNotFoundError:
                return web.Response(status=404)
            except InstanceGoneError:
                return web.Response(status=410)
            return web.Response(status=202)
        if operation == "restart":
            new_id = _flag(request.query, "restartWithNewInstanceId", default=True)
            try:
                started = await asyncio.to_thread(
                    lambda: self.host.restart(instance_id, new_instance_id=new_id)
                )
            except InstanceNotFoundError:
                return web.Response(status=404)
            except InstanceExistsError as exc:
                return _error(
                    409, "A non-terminal instance with this instance ID already exists.", exc
                )
            return self._check_status_response(request, started)
        if operation in ("suspend", "resume", "rewind"):
            message = f"devhost does not implement the Durable '{operation}' operation."
            return _error(501, message)
        return web.Response(status=404)


def _error(status: int, message: str, exc: BaseException | None = None) -> web.Response:
    """An ASP.NET-style error body: `Message`, plus the exception's message and type (the
    Python client reads `ExceptionMessage` from a 400)."""
    body: dict[str, Any] = {"Message": message, "ExceptionMessage": message}
    if exc is not None:
        body["ExceptionMessage"] = str(exc)
        body["ExceptionType"] = type(exc).__name__
    return web.json_response(body, status=status)


def _flag(query: Any, name: str, *, default: bool) -> bool:
    """A boolean query parameter as .NET's bool.TryParse reads it ("true"/"True"...)."""
    value = query.get(name)
    if value is None:
        return default
    lowered = str(value).strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return default


def _time(query: Any, name: str) -> datetime | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace(" ", "+"))
    except ValueError as exc:
        raise ValueError(f"invalid {name}: {value!r}") from exc


def _statuses(query: Any) -> list[str] | None:
    names = [s.strip() for v in query.getall("runtimeStatus", []) for s in str(v).split(",")]
    names = [n for n in names if n]
    return names or None
