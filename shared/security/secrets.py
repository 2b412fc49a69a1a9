"""Secrets behind one small interface: Azure Key Vault in Azure, settings plus a file locally.

Everything in pixelpipe that needs a secret *that rotates* (today: the key-encryption key of
blob client-side encryption, `shared.security.kek`) asks a `SecretProvider`. Secrets that never
rotate stay ordinary settings: in Azure they hold Key Vault references that the platform
resolves (`shared/config.py`), and nothing here is involved.

    SecretProvider (ABC)
    ├── KeyVaultSecretProvider   azure-keyvault-secrets SecretClient + cache + bounded retries
    └── LocalSecretProvider      PIXELPIPE_SECRET_<NAME> settings + an optional JSON version store

    secret_provider_from_settings(kind, ...)   "keyvault" or "local"

The interface follows Key Vault's model, so the two behave alike:

- A secret has a name and versions; each version has an immutable value, an id (the
  *versioned* id: `https://<vault>/secrets/<name>/<version>` in Key Vault,
  `local://secrets/<name>/<version>` locally) and an `enabled` flag.
- `get(name)` returns the newest version; `get(name, version)` and `get_by_id(id)` one exact
  version. A disabled version raises `SecretDisabled` (Key Vault answers 403 "Operation get
  is not allowed on a disabled secret"); this includes the newest one, exactly as Key Vault
  does: disabling the newest version does not make `get(name)` fall back to an older one.
- `set(name, value)` always creates a new version (this is how keys rotate); `versions(name)`
  lists metadata, newest first, with empty values; `disable(name, version)` turns one off.
- Names are 1-127 characters of letters, digits and dashes, compared case-insensitively.

Errors (all `shared.errors.ServiceError`, so users see a 5xx and never a secret):

    SecretError            500  SECRET_ERROR          Key Vault answered something unexpected
    ├── SecretNotFound     500  SECRET_NOT_FOUND      no such secret or version (Key Vault 404)
    ├── SecretDisabled     500  SECRET_DISABLED       the version exists but is disabled (403)
    └── SecretAccessDenied 500  SECRET_ACCESS_DENIED  no token, or the identity may not read it
    shared.errors.Unavailable  503  (retryable)      throttled (429), 5xx or unreachable after
                                                      the bounded retries

Key Vault provider. The SDK client does the HTTP work; this class adds:

- The challenge protocol is the SDK's: the first request of a client goes out without a
  token, Key Vault answers 401 with `WWW-Authenticate: Bearer authorization="<login>/<tenant>",
  resource="https://vault.azure.net"`, the SDK asks the credential for
  `https://vault.azure.net/.default` in that tenant and repeats the request. The SDK also checks
  that the vault's host ends with the challenge's resource domain; keep
  `verify_challenge_resource=True` everywhere except tests against a loopback server.
- Retries: the SDK's `RetryPolicy`, bounded by `retries` (429, 408, 500, 502, 503, 504 and
  connection errors; PATCH/POST are not retried on 500/503/504; note that azure-core also
  retries *any* error status that carries a `Retry-After` header), exponential backoff from
  `retry_backoff` (the first retry is immediate, then 2x, 4x the factor) capped at
  `retry_backoff_max`, and a server's `Retry-After` honoured but capped at `retry_after_max`,
  so one call waits at most about `retries * retry_after_max` seconds. When retries run out
  the call raises `Unavailable` (retryable: the queue message comes back later) carrying the
  last `Retry-After`.
- A cache per provider instance: every successful read is kept for `cache_ttl` seconds, keyed
  by (name, version) and by (name, latest). Versions are immutable, so the only staleness is
  (a) a newer version set by *another* process becomes visible within `cache_ttl`, and (b) a
  version disabled elsewhere can still be served from the cache for up to `cache_ttl`.
  `set` and `disable` through this instance update the cache at once. `cache_ttl=0` disables it.
- `set` is a PUT, which the SDK retries: a lost response can leave one extra version behind.
  For key rotation that is harmless (the newest version is used; the orphan is never used).
- Ids from another vault are refused by `get_by_id` with `SecretNotFound`: a blob's metadata
  cannot make us read a secret from a host we were not configured with.

Local provider (development, tests, `make run`):

- Values come from settings named `PIXELPIPE_SECRET_<NAME>` (upper case, dashes become
  underscores), e.g. `PIXELPIPE_SECRET_BLOB_KEK` in `local.settings.json`. Such a value is one
  version with the fixed version id `settings` (the value has no history, and deriving an id
  from it would leak a hash of the secret into blob metadata). Do not change it once data is
  encrypted under it: rotate instead.
- `set` (rotation) writes versions with random 32-hex-character ids to a JSON file (`store_path`,
  meant to live in the git-ignored `.data/` folder; created 0600 in a 0700 folder, replaced
  atomically, writes serialised with `flock`). Stored versions are newer than the settings
  value; the newest wins. Without a `store_path` the versions live in memory only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from secrets import token_hex  # the standard library's module, not this one
from typing import Any, NamedTuple, Self, TypeVar
from urllib.parse import unquote, urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.keyvault.secrets import KeyVaultSecret, SecretClient, SecretProperties

from shared.errors import ServiceError, Unavailable

__all__ = [
    "KeyVaultSecretProvider",
    "LocalSecretProvider",
    "Secret",
    "SecretAccessDenied",
    "SecretDisabled",
    "SecretError",
    "SecretNotFound",
    "SecretProvider",
    "SecretRef",
    "secret_provider_from_settings",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z]{1,64}$")
LOCAL_SETTING_PREFIX = "PIXELPIPE_SECRET_"


# -- errors -------------------------------------------------------------------------------------
class SecretError(ServiceError):
    """A secret could not be read or written for a reason retrying will not fix."""

    code = "SECRET_ERROR"
    default_message = "A secret could not be read."


class SecretNotFound(SecretError):
    """No such secret, no such version, or an id this provider does not serve."""

    code = "SECRET_NOT_FOUND"
    default_message = "A secret the service needs does not exist."


class SecretDisabled(SecretError):
    """The version exists but is disabled."""

    code = "SECRET_DISABLED"
    default_message = "A secret the service needs is disabled."


class SecretAccessDenied(SecretError):
    """No token could be obtained, or the identity is not allowed to use the secret."""

    code = "SECRET_ACCESS_DENIED"
    default_message = "The service is not allowed to read a secret it needs."


# -- the interface ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Secret:
    """One version of a secret. `value` is empty in `versions()` listings; never printed."""

    name: str
    value: str = field(repr=False)
    version: str
    id: str
    enabled: bool = True
    created_on: dt.datetime | None = None


class SecretRef(NamedTuple):
    """A parsed versioned secret id."""

    name: str
    version: str


class SecretProvider(ABC):
    """Where secrets come from; see the module docstring for the shared semantics."""

    @abstractmethod
    def get(self, name: str, version: str | None = None) -> Secret:
        """The newest version (`version=None`) or one exact version, with its value."""

    @abstractmethod
    def set(self, name: str, value: str) -> Secret:
        """Store `value` as a new, newest version and return it."""

    @abstractmethod
    def versions(self, name: str) -> list[Secret]:
        """Every version's metadata (empty values), newest first; [] if the name is unknown."""

    @abstractmethod
    def disable(self, name: str, version: str) -> None:
        """Disable one version; reads of it raise `SecretDisabled` from then on."""

    @abstractmethod
    def parse_id(self, secret_id: str) -> SecretRef:
        """Name and version from a versioned id this provider issued, else `SecretNotFound`."""

    def get_by_id(self, secret_id: str) -> Secret:
        """The exact version a versioned id names."""
        ref = self.parse_id(secret_id)
        return self.get(ref.name, ref.version)

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections (nothing to release by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("A secret name is 1-127 letters, digits and dashes.")
    return name


def _check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ValueError("A secret version is 1-64 letters and digits.")
    return version


def _split_versioned_path(path: str) -> SecretRef | None:
    parts = path.split("/")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "secrets":
        return None
    name, version = unquote(parts[2]), unquote(parts[3])
    if not _NAME.match(name) or not _VERSION.match(version):
        return None
    return SecretRef(name, version)


# -- Key Vault ----------------------------------------------------------------------------------
class _BoundedRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's retry policy, with the server's Retry-After capped."""

    def __init__(self, *, retry_after_max: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._retry_after_max = retry_after_max

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self._retry_after_max)


@dataclass
class _Cached:
    secret: Secret
    expires: float


class KeyVaultSecretProvider(SecretProvider):
    """Secrets in Azure Key Vault through `azure.keyvault.secrets.SecretClient`.

    `vault_url` is the vault's base URL (`https://<name>.vault.azure.net`). `credential` is
    any `TokenCredential` (in Azure: the Function app's managed identity). `connection_verify`
    (True, or a CA bundle path) and `verify_challenge_resource` exist for the loopback
    protocol tests; leave them alone in production.
    """

    def __init__(
        self,
        vault_url: str,
        credential: TokenCredential,
        *,
        cache_ttl: float = 300.0,
        retries: int = 3,
        retry_backoff: float = 0.5,
        retry_backoff_max: float = 8.0,
        retry_after_max: float = 5.0,
        timeout: float = 10.0,
        connection_verify: bool | str = True,
        verify_challenge_resource: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(vault_url.strip())
        if parts.scheme.lower() != "https" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("The Key Vault URL must look like https://<name>.vault.azure.net")
        self.vault_url = f"https://{parts.netloc}"
        self._origin = _origin(self.vault_url)
        self._retries = retries
        self._ttl = cache_ttl
        self._clock = clock
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._lock = threading.Lock()
        policy = _BoundedRetryPolicy(
            retry_after_max=retry_after_max,
            retry_total=retries,
            retry_connect=retries,
            retry_read=retries,
            retry_status=retries,
            retry_backoff_factor=retry_backoff,
            retry_backoff_max=retry_backoff_max,
        )
        self._client = SecretClient(
            self.vault_url,
            credential,
            retry_policy=policy,
            connection_timeout=timeout,
            read_timeout=timeout,
            connection_verify=connection_verify,
            verify_challenge_resource=verify_challenge_resource,
        )

    def __repr__(self) -> str:
        return f"KeyVaultSecretProvider({self.vault_url!r})"

    # -- the interface ----------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> Secret:
        _check_name(name)
        if version is not None:
            _check_version(version)
        hit = self._cached(name, version)
        if hit is not None:
            return hit
        bundle = self._call(
            "read", name, version, lambda: self._client.get_secret(name, version or None)
        )
        secret = _from_bundle(bundle)
        if not secret.enabled:  # Key Vault answers 403 for these; a non-conforming answer
            raise SecretDisabled(f"The secret {secret.id} is disabled.", secret=name)
        self._remember(secret, latest=version is None)
        return secret

    def set(self, name: str, value: str) -> Secret:
        _check_name(name)
        bundle = self._call("write", name, None, lambda: self._client.set_secret(name, value))
        secret = _from_bundle(bundle)
        self._remember(secret, latest=True)
        return secret

    def versions(self, name: str) -> list[Secret]:
        _check_name(name)

        def listing() -> list[SecretProperties]:
            return list(self._client.list_properties_of_secret_versions(name))

        try:
            items = self._call("list", name, None, listing)
        except SecretNotFound:
            return []
        out = [_from_properties(p) for p in items]
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        # Key Vault lists versions in no particular order and `created` has whole seconds:
        # versions created within the same second have no defined order.
        out.sort(key=lambda s: s.created_on or epoch, reverse=True)
        return out

    def disable(self, name: str, version: str) -> None:
        _check_name(name)
        _check_version(version)

        def patch() -> SecretProperties:
            return self._client.update_secret_properties(name, version, enabled=False)

        self._call("disable", name, version, patch)
        with self._lock:
            self._cache.pop((name.lower(), version.lower()), None)
            self._cache.pop((name.lower(), ""), None)

    def parse_id(self, secret_id: str) -> SecretRef:
        try:
            parts = urlsplit(secret_id)
            ref = _split_versioned_path(parts.path)
            same_vault = _origin(secret_id) == self._origin
        except ValueError:
            ref, same_vault = None, False
        if ref is None or not same_vault or parts.query or parts.fragment:
            raise SecretNotFound(
                f"{secret_id!r} is not a versioned secret id of the vault {self.vault_url}."
            )
        return ref

    def close(self) -> None:
        self._client.close()

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- internals --------------------------------------------------------------------------
    def _cached(self, name: str, version: str | None) -> Secret | None:
        key = (name.lower(), (version or "").lower())
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry.expires <= self._clock():
                del self._cache[key]
                return None
            return entry.secret

    def _remember(self, secret: Secret, *, latest: bool) -> None:
        if self._ttl <= 0:
            return
        entry = _Cached(secret, self._clock() + self._ttl)
        with self._lock:
            self._cache[(secret.name.lower(), secret.version.lower())] = entry
            if latest:
                self._cache[(secret.name.lower(), "")] = entry

    def _call(self, what: str, name: str, version: str | None, call: Callable[[], T]) -> T:
        """Run one SDK call (the SDK retries inside it) and map its failures onto our errors."""
        label = f"{name}/{version}" if version else name
        try:
            return call()
        except ResourceNotFoundError as exc:
            raise SecretNotFound(
                f"The secret {label} does not exist in {self.vault_url}.", secret=name
            ) from exc
        except ClientAuthenticationError as exc:
            reason = "refused the token" if exc.response is not None else "got no token"
            raise SecretAccessDenied(
                f"Key Vault {self.vault_url} {reason}: cannot {what} the secret {name}.",
                secret=name,
            ) from exc
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status == 403:
                if _is_disabled(exc):
                    raise SecretDisabled(f"The secret {label} is disabled.", secret=name) from exc
                raise SecretAccessDenied(
                    f"The identity may not {what} the secret {name} in {self.vault_url}.",
                    secret=name,
                ) from exc
            if status in (408, 429) or status >= 500:
                log.warning("Key Vault %s of %s failed: HTTP %s after retries", what, name, status)
                raise Unavailable(
                    f"Key Vault is unavailable (HTTP {status} after {self._retries} retries); "
                    "retry later.",
                    retry_after=_retry_after(exc),
                ) from exc
            raise SecretError(
                f"Key Vault refused to {what} the secret {name} (HTTP {status}).", secret=name
            ) from exc
        except AzureError as exc:  # connection refused/reset, timeouts, retries exhausted
            log.warning("Key Vault %s of %s failed: %s", what, name, type(exc).__name__)
            raise Unavailable(
                f"Key Vault could not be reached after {self._retries} retries; retry later."
            ) from exc
        except ValueError as exc:
            # The SDK raises ValueError when a challenge names a resource that does not match
            # the vault's host (or is malformed): a misconfiguration, never transient.
            raise SecretAccessDenied(
                f"Key Vault's authentication challenge from {self.vault_url} was refused.",
                secret=name,
            ) from exc


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or 443)


def _is_disabled(exc: HttpResponseError) -> bool:
    error = exc.error
    inner = getattr(error, "innererror", None) or {}
    if isinstance(inner, Mapping) and inner.get("code") == "SecretDisabled":
        return True
    return "disabled" in (getattr(error, "message", None) or "").lower()


def _retry_after(exc: HttpResponseError) -> int:
    try:
        value = float(exc.response.headers["Retry-After"])  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError, ValueError):
        return 5
    return max(1, math.ceil(value))


def _from_bundle(bundle: KeyVaultSecret) -> Secret:
    secret = _from_properties(bundle.properties)
    return replace(secret, value=bundle.value or "")


def _from_properties(props: SecretProperties) -> Secret:
    if not props.id or not props.name or not props.version:
        raise SecretError("Key Vault returned a secret without a versioned id.")
    return Secret(
        name=props.name,
        value="",
        version=props.version,
        id=props.id,
        enabled=bool(props.enabled),
        created_on=props.created_on,
    )


# -- local --------------------------------------------------------------------------------------
class _Store:
    """Versions kept in memory; `_FileStore` keeps them in a JSON file."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {"format": 1, "secrets": {}}
        self._lock = threading.RLock()

    def read(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._data))  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            data = self.read()
            yield data
            self._data = data


class _FileStore(_Store):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": 1, "secrets": {}}
        except (OSError, ValueError) as exc:
            raise SecretError("The local secret store cannot be read.") from exc
        if not isinstance(data, dict) or not isinstance(data.get("secrets"), dict):
            raise SecretError("The local secret store is not in the expected format.")
        return data

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock, _file_lock(self.path.with_name(self.path.name + ".lock")):
            data = self.read()
            yield data
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(data, out, indent=2, sort_keys=True)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: one process at a time is the caller's business
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class LocalSecretProvider(SecretProvider):
    """Secrets from settings (`PIXELPIPE_SECRET_<NAME>`) plus versions kept in `store_path`."""

    SETTINGS_VERSION = "settings"
    SCHEME = "local"

    def __init__(
        self,
        values: Mapping[str, str] | None = None,
        *,
        store_path: str | os.PathLike[str] | None = None,
        prefix: str = LOCAL_SETTING_PREFIX,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._values = {k: v for k, v in (values or {}).items() if k.startswith(prefix) and v}
        self._prefix = prefix
        self._store: _Store = _FileStore(Path(store_path)) if store_path else _Store()
        self._now = now

    def __repr__(self) -> str:
        where = getattr(self._store, "path", "memory")
        return f"LocalSecretProvider(store={str(where)!r})"

    def setting_name(self, name: str) -> str:
        """The setting that holds `name`'s base value: `PIXELPIPE_SECRET_BLOB_KEK` for blob-kek."""
        return self._prefix + _check_name(name).upper().replace("-", "_")

    def get(self, name: str, version: str | None = None) -> Secret:
        all_versions = self._all(name)
        if version is None:
            if not all_versions:
                raise SecretNotFound(f"The secret {name} does not exist.", secret=name)
            found = all_versions[-1]
        else:
            _check_version(version)
            matches = [s for s in all_versions if s.version == version.lower()]
            if not matches:
                raise SecretNotFound(f"The secret {name}/{version} does not exist.", secret=name)
            found = matches[0]
        if not found.enabled:
            raise SecretDisabled(f"The secret {found.id} is disabled.", secret=name)
        return found

    def set(self, name: str, value: str) -> Secret:
        key = _check_name(name).lower()
        record = {
            "version": token_hex(16),
            "value": value,
            "enabled": True,
            "created_on": self._now().isoformat(),
        }
        with self._store.update() as data:
            entry = data["secrets"].setdefault(key, {"versions": []})
            entry["versions"].append(record)
        return self._secret(key, record)

    def versions(self, name: str) -> list[Secret]:
        return [replace(s, value="") for s in reversed(self._all(name))]

    def disable(self, name: str, version: str) -> None:
        key = _check_name(name).lower()
        version = _check_version(version).lower()
        if version == self.SETTINGS_VERSION and self.setting_name(name) in self._values:
            with self._store.update() as data:
                data["secrets"].setdefault(key, {"versions": []})["settings_enabled"] = False
            return
        with self._store.update() as data:
            for record in data["secrets"].get(key, {}).get("versions", []):
                if record["version"] == version:
                    record["enabled"] = False
                    return
        raise SecretNotFound(f"The secret {name}/{version} does not exist.", secret=name)

    def parse_id(self, secret_id: str) -> SecretRef:
        parts = urlsplit(secret_id)
        ref = None
        if parts.scheme == self.SCHEME and parts.netloc == "secrets":
            ref = _split_versioned_path("/secrets" + parts.path)
        if ref is None or parts.query or parts.fragment:
            raise SecretNotFound(f"{secret_id!r} is not a local versioned secret id.")
        return ref

    def _all(self, name: str) -> list[Secret]:
        """Every version of `name`, oldest first, values included."""
        key = _check_name(name).lower()
        entry = self._store.read()["secrets"].get(key, {})
        out: list[Secret] = []
        base = self._values.get(self.setting_name(name))
        if base is not None:
            out.append(
                Secret(
                    name=key,
                    value=base,
                    version=self.SETTINGS_VERSION,
                    id=self._id(key, self.SETTINGS_VERSION),
                    enabled=bool(entry.get("settings_enabled", True)),
                    created_on=None,
                )
            )
        out.extend(self._secret(key, record) for record in entry.get("versions", []))
        return out

    def _secret(self, key: str, record: Mapping[str, Any]) -> Secret:
        return Secret(
            name=key,
            value=str(record["value"]),
            version=str(record["version"]),
            id=self._id(key, str(record["version"])),
            enabled=bool(record.get("enabled", True)),
            created_on=dt.datetime.fromisoformat(record["created_on"]),
        )

    def _id(self, key: str, version: str) -> str:
        return f"{self.SCHEME}://secrets/{key}/{version}"


# -- factory ------------------------------------------------------------------------------------
def secret_provider_from_settings(
    kind: str,
    *,
    vault_url: str | None,
    local_values: Mapping[str, str],
    local_store: str | None,
    credential: TokenCredential | None = None,
    cache_ttl: float = 300.0,
) -> SecretProvider:
    """The provider the settings ask for: `kind` is "keyvault" or "local" (any case).

    "keyvault" needs `vault_url`; without a `credential` it uses azure-identity's
    `DefaultAzureCredential` (managed identity in Azure; set `AZURE_CLIENT_ID` for a
    user-assigned identity). "local" reads `PIXELPIPE_SECRET_*` from `local_values` and keeps
    rotated versions in `local_store` (in memory when None).
    """
    from shared.config import ConfigError  # imported here: config may come to import us

    choice = (kind or "").strip().lower()
    if choice == "keyvault":
        if not vault_url:
            raise ConfigError(
                "PIXELPIPE_KEY_VAULT_URL must be set when secrets come from Key Vault."
            )
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        try:
            return KeyVaultSecretProvider(vault_url, credential, cache_ttl=cache_ttl)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if choice == "local":
        return LocalSecretProvider(local_values, store_path=local_store)
    raise ConfigError(f"PIXELPIPE_SECRETS_PROVIDER must be 'keyvault' or 'local', not {kind!r}.")
