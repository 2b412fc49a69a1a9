"""A loopback HTTPS server that speaks the few Azure Key Vault *secrets* REST calls pixelpipe uses.

THIS IS A PROTOCOL TEST, NOT KEY VAULT. No Key Vault emulator exists on these machines
(PLATFORM.md, "Key Vault"), so `shared.security.secrets.KeyVaultSecretProvider` is tested
against this server: the real `azure-keyvault-secrets` client, its real pipeline (challenge
authentication, retry policy, requests transport, TLS) and our error mapping, talking to a
server that answers the way Key Vault's REST API is documented to answer. Passing these tests
shows that our wiring of the SDK is right for the responses modelled here. It does not show
that Key Vault behaves like this fake, nor anything about access policies/RBAC, soft delete,
purge protection, Key Vault references in app settings, network rules or real throttling
limits. Those need a real vault.

What it speaks (the paths the installed SDK builds; any `api-version` is accepted and
recorded, a missing one is a 400):

    GET    /secrets/{name}/                 latest version (the SDK sends an empty version)
    GET    /secrets/{name}/{version}        one version; disabled → 403 SecretDisabled
    PUT    /secrets/{name}                  {"value": ...} → a new version (32 hex chars)
    GET    /secrets/{name}/versions         paged list (`value`, `nextLink`), no values
    PATCH  /secrets/{name}/{version}        {"attributes": {"enabled": false}} and friends
    DELETE /secrets/{name}                  removes every version (no soft-delete modelled)

Authentication is Key Vault's challenge protocol: any request without a valid bearer token
gets `401` with `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/
<tenant>", resource="https://vault.azure.net"`; the SDK then asks its credential for a token
for `https://vault.azure.net/.default` (the resource plus `/.default`) and sends the request
again with `Authorization: Bearer <token>`. Only `token` (constructor) is accepted; a wrong
token gets 401 again. Because the challenge names `vault.azure.net` while the server is
`127.0.0.1`, the SDK's challenge-resource check must be off for these tests
(`verify_challenge_resource=False`); with it on, the SDK refuses the challenge (a test shows
that too).

Faults: `fail_next(n, status, retry_after=...)` makes the next `n` authenticated requests fail
with that status (429 with `Retry-After`, 500/503, 404, ...) before touching any state.

TLS: at `start()` a throwaway CA and a server certificate for `127.0.0.1`/`localhost` are
generated (EC P-256, one hour) into a temporary directory; `ca_path` is the CA certificate to
trust (pass it as `connection_verify=` to the SDK). Every request is recorded in `requests`.
Secret ids in responses use the server's own base URL, so they parse like real ids.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.credentials import AccessToken

from tests.support.tls import make_certificates

__all__ = ["VAULT_SCOPE", "FakeKeyVault", "FakeTokenCredential", "RecordedRequest", "iter_pages"]

VAULT_RESOURCE = "https://vault.azure.net"
VAULT_SCOPE = VAULT_RESOURCE + "/.default"
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_AUTO = "auto"


class FakeTokenCredential:
    """A `TokenCredential` that hands out one fixed token and records what it was asked for."""

    def __init__(self, token: str = "fake-key-vault-token", *, expires_in: int = 3600) -> None:
        self.token = token
        self.expires_in = expires_in
        self.calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    @property
    def scopes(self) -> list[str]:
        """Every scope requested so far, in order."""
        return [scope for scopes, _ in self.calls for scope in scopes]

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls.append((scopes, kwargs))
        return AccessToken(self.token, int(time.time()) + self.expires_in)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Version:
    version: str
    value: str
    enabled: bool
    created: int
    updated: int
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    status: int
    retry_after: str | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    vault: FakeKeyVault

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, not in the accept loop.
        try:
            request.do_handshake()
        except (OSError, ssl.SSLError):
            return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.vault._handle(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-keyvault-service-version", "fake")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = _dispatch


class FakeKeyVault:
    """The server; use as a context manager or call `start()`/`stop()`."""

    def __init__(
        self,
        *,
        token: str = "fake-key-vault-token",
        tenant_id: str = "00000000-0000-4000-8000-000000000001",
        page_size: int = 25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.tenant_id = tenant_id
        self.page_size = page_size
        self.clock = clock
        self._lock = threading.Lock()
        self._secrets: dict[str, list[_Version]] = {}  # lower-case name → versions, oldest first
        self._names: dict[str, str] = {}  # lower-case name → name as first set
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None
        self.ca_path = ""
        self.url = ""

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FakeKeyVault:
        self._dir = Path(tempfile.mkdtemp(prefix="fake-keyvault-"))
        cert_path, key_path, self.ca_path = make_certificates(self._dir, "fake Key Vault")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
        server = _Server(("127.0.0.1", 0), _Handler)
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.vault = self
        self._server = server
        self.url = f"https://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> FakeKeyVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests look at and control -----------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def fail_next(self, count: int, status: int = 429, *, retry_after: str | None = _AUTO) -> None:
        """The next `count` authenticated requests fail with `status` (state is untouched).

        429 and 503 carry `Retry-After: 0` unless told otherwise (None: no header). Note that
        azure-core retries *any* 4xx/5xx that carries a Retry-After header.
        """
        if retry_after == _AUTO:
            retry_after = "0" if status in (429, 503) else None
        with self._lock:
            self._faults.extend(_Fault(status, retry_after) for _ in range(count))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def seed(self, name: str, value: str, *, enabled: bool = True) -> str:
        """Create a version directly (no HTTP); returns its id."""
        with self._lock:
            return self._secret_id(name, self._add(name, value, enabled=enabled, tags={}).version)

    def set_enabled(self, name: str, version: str, enabled: bool) -> None:
        with self._lock:
            self._find(name, version).enabled = enabled

    def delete_secret(self, name: str) -> None:
        with self._lock:
            self._secrets.pop(name.lower(), None)

    def version_ids(self, name: str) -> list[str]:
        """Versions of `name`, oldest first."""
        with self._lock:
            return [v.version for v in self._secrets.get(name.lower(), [])]

    # -- the protocol -----------------------------------------------------------------------
    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            status, extra, payload = self._respond(method, parts.path, query, headers, body)
            self._requests.append(RecordedRequest(method, parts.path, query, headers, body, status))
        return status, extra, payload

    def _respond(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], Any]:
        if headers.get("authorization") != f"Bearer {self.token}":
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
                f'resource="{VAULT_RESOURCE}"'
            )
            message = "AKV10000: Request is missing a Bearer or PoP token."
            if "authorization" in headers:
                message = "AKV10032: Invalid issuer or token."
            return 401, {"WWW-Authenticate": challenge}, _error("Unauthorized", message)
        if "api-version" not in query:
            return 400, {}, _error("BadParameter", "The api-version query parameter is missing.")
        if self._faults:
            fault = self._faults.pop(0)
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            code = {
                429: "Throttled",
                403: "Forbidden",
                404: "SecretNotFound",
                503: "ServiceUnavailable",
            }.get(fault.status, "InternalServerError")
            return fault.status, extra, _error(code, f"Injected fault ({fault.status}).")

        segments = [unquote(s) for s in path.split("/")[1:]]
        if len(segments) < 2 or segments[0] != "secrets" or not _NAME.match(segments[1]):
            return 404, {}, _error("NotFound", f"No route for {method} {path}.")
        name = segments[1]
        rest = segments[2:]
        if method == "PUT" and not rest:
            return self._put(name, body)
        if method == "DELETE" and not rest:
            return self._delete(name)
        if method == "GET" and rest == ["versions"]:
            return self._list(name, query)
        if method == "GET" and len(rest) == 1:
            return self._get(name, rest[0])
        if method == "PATCH" and len(rest) == 1 and rest[0]:
            return self._patch(name, rest[0], body)
        return 405, {}, _error("MethodNotAllowed", f"{method} {path} is not supported here.")

    def _put(self, name: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        try:
            request = json.loads(body)
            value = request["value"]
            if not isinstance(value, str):
                raise TypeError("value")
        except (ValueError, KeyError, TypeError):
            return 400, {}, _error("BadParameter", "The request body must carry a string value.")
        attributes = request.get("attributes") or {}
        version = self._add(
            name,
            value,
            enabled=attributes.get("enabled", True),
            tags=request.get("tags") or {},
            content_type=request.get("contentType"),
        )
        return 200, {}, self._bundle(name, version, with_value=True)

    def _get(self, name: str, version_id: str) -> tuple[int, dict[str, str], Any]:
        versions = self._secrets.get(name.lower())
        if not versions:
            return 404, {}, _not_found(name, version_id)
        if version_id:
            found = [v for v in versions if v.version == version_id.lower()]
            if not found:
                return 404, {}, _not_found(name, version_id)
            version = found[0]
        else:
            version = versions[-1]
        if not version.enabled:
            return (
                403,
                {},
                _error(
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                    inner="SecretDisabled",
                ),
            )
        return 200, {}, self._bundle(name, version, with_value=True)

    def _list(self, name: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        versions = self._secrets.get(name.lower(), [])
        size = min(int(query.get("maxresults") or self.page_size), self.page_size)
        start = int(query.get("$skiptoken") or 0)
        page = versions[start : start + size]
        next_link = None
        if start + size < len(versions):
            next_link = (
                f"{self.url}/secrets/{self._names[name.lower()]}/versions"
                f"?api-version={query['api-version']}&$skiptoken={start + size}"
                f"&maxresults={size}"
            )
        items = [self._bundle(name, v, with_value=False) for v in page]
        return 200, {}, {"value": items, "nextLink": next_link}

    def _patch(self, name: str, version_id: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        try:
            version = self._find(name, version_id)
        except KeyError:
            return 404, {}, _not_found(name, version_id)
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {}, _error("BadParameter", "The request body is not JSON.")
        attributes = request.get("attributes") or {}
        if "enabled" in attributes:
            version.enabled = bool(attributes["enabled"])
        if request.get("tags") is not None:
            version.tags = dict(request["tags"])
        if request.get("contentType") is not None:
            version.content_type = request["contentType"]
        version.updated = int(self.clock())
        return 200, {}, self._bundle(name, version, with_value=False)

    def _delete(self, name: str) -> tuple[int, dict[str, str], Any]:
        versions = self._secrets.pop(name.lower(), None)
        if not versions:
            return 404, {}, _not_found(name, "")
        bundle = self._bundle(name, versions[-1], with_value=False)
        now = int(self.clock())
        bundle.update(
            recoveryId=f"{self.url}/deletedsecrets/{name}",
            deletedDate=now,
            scheduledPurgeDate=now + 90 * 86400,
        )
        return 200, {}, bundle

    # -- state helpers (called with the lock held) ------------------------------------------
    def _add(
        self,
        name: str,
        value: str,
        *,
        enabled: bool,
        tags: dict[str, str],
        content_type: str | None = None,
    ) -> _Version:
        now = int(self.clock())
        version = _Version(secrets.token_hex(16), value, enabled, now, now, content_type, tags)
        self._names.setdefault(name.lower(), name)
        self._secrets.setdefault(name.lower(), []).append(version)
        return version

    def _find(self, name: str, version_id: str) -> _Version:
        for version in self._secrets.get(name.lower(), []):
            if version.version == version_id.lower():
                return version
        raise KeyError(f"{name}/{version_id}")

    def _secret_id(self, name: str, version: str) -> str:
        return f"{self.url}/secrets/{self._names.get(name.lower(), name)}/{version}"

    def _bundle(self, name: str, version: _Version, *, with_value: bool) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "id": self._secret_id(name, version.version),
            "attributes": {
                "enabled": version.enabled,
                "created": version.created,
                "updated": version.updated,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": version.tags,
        }
        if version.content_type is not None:
            bundle["contentType"] = version.content_type
        if with_value:
            bundle["value"] = version.value
        return bundle


def _error(code: str, message: str, *, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


def _not_found(name: str, version: str) -> dict[str, Any]:
    ident = f"{name}/{version}" if version else name
    return _error(
        "SecretNotFound",
        f"A secret with (name/id) {ident} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery command.",
    )


def iter_pages(vault: FakeKeyVault) -> Iterator[RecordedRequest]:
    """The served `GET .../versions` requests (one per page fetched)."""
    return (
        r
        for r in vault.requests
        if r.method == "GET" and r.path.endswith("/versions") and r.status == 200
    )
