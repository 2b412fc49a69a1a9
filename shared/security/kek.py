"""Key-encryption keys (KEKs) for azure-storage-blob client-side encryption v2, and their rotation.

Originals are encrypted in the client by azure-storage-blob (encryption v2: AES-256-GCM per
4 MiB region, a fresh 32-byte content key per blob). The content key is *wrapped* by a KEK and
stored, wrapped, in the blob's `encryptiondata` metadata together with the KEK's id (`KeyId`)
and algorithm. pixelpipe's KEK is a 256-bit key held as a secret (`shared.security.secrets`),
used with AES key wrap (RFC 3394, JOSE name "A256KW"): `KeyWrapKey`. Its kid is the secret's
*versioned* id (`https://<vault>/secrets/<name>/<version>`, or `local://secrets/<name>/<version>`
locally), so every blob names the exact key version it needs, and `KeyRing` finds it again
after any number of rotations.

Wiring (what `azure.storage.blob` 12.27 does with these objects, read from its `_encryption.py`):

    ring = KeyRing(provider, "blob-kek")
    ring.ensure()                                   # at start-up: first version if none
    client = BlobServiceClient(
        url, credential,
        require_encryption=True, encryption_version="2.0",   # never the default "1.0"
        key_encryption_key=ring.current(),          # used for uploads
        key_resolver_function=ring.resolve,         # used for downloads
    )

- Upload: the SDK calls `kek.wrap_key(b"2.0\\0\\0\\0\\0\\0" + cek)` (the protocol version padded
  to 8 bytes, then the 32-byte content key: 40 bytes), then `get_kid()` and
  `get_key_wrap_algorithm()`, and stores the three in the metadata. The client keeps the KEK
  object it was given (clients made by `get_blob_client`/`get_container_client` copy it). After
  a rotation, new writes use the new key only once a client holds `ring.current()`: create
  clients per job, or set `blob_client.key_encryption_key = ring.current()` before uploading.
  `current()` returns an immutable key (its kid and material never change under the SDK
  between `wrap_key` and `get_kid`); it re-reads the newest version at most every `cache_ttl`.
- Download: for every downloaded chunk the SDK calls `resolver(KeyId)`, then checks that the
  returned KEK's `get_kid()` equals `KeyId` *exactly* (else "does not match the id of key used to
  encrypt"), then calls `unwrap_key(wrapped, Algorithm)` and checks the 8-byte version prefix.
  `resolve()` therefore returns a key whose kid is the very string it was given. A resolver or
  unwrap failure is NOT passed through: the SDK wraps any exception raised during decryption
  in `HttpResponseError("Decryption failed.")` (the original is `__cause__` and
  `.inner_exception`); for the first chunk, `download_blob` even retries the download and the
  decryption three times with a hard-coded 1 s sleep, then wraps the error once more.
  `decryption_error(exc, kid=...)` recovers ours: `Unavailable` stays retryable (Key Vault
  throttled while resolving), everything else is `DecryptionFailed` naming the kid.
  To fail fast and cleanly, resolve before downloading: read the blob's properties,
  `ring.resolve(encryption_kid(properties.metadata))` (raises our errors directly, and warms
  the provider's cache), then download.
- `require_encryption=True` also makes the SDK refuse to download blobs that carry no
  encryption metadata, and to upload without a KEK.

Rotation: `rotate()` stores 32 fresh random bytes as a new version and returns it; old versions
stay enabled, so every blob keeps decrypting. Disabling or deleting an old version makes the
blobs written under it undecryptable: `resolve()` raises `DecryptionFailed(kid=...)`. Two
instances calling `ensure()` at once may both create a version; both are valid keys, the
newest is used.

`resolve()` only loads versions of this ring's own key name from the provider's own vault
(the kid comes from blob metadata: it must not make us read any other secret or host).

Errors: `DecryptionFailed` (500, kid set) for an unknown, disabled, deleted, foreign or
malformed key and for unwrap failures (wrong key, wrong algorithm, tampered metadata);
`InvalidKeyMaterial` (500) when a secret is not a base64-encoded 32-byte key;
`shared.errors.Unavailable` (503, retryable) passes through from the provider.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Mapping
from secrets import token_bytes  # the standard library's module

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from shared.errors import DecryptionFailed, PixelpipeError, ServiceError
from shared.security.secrets import (
    Secret,
    SecretDisabled,
    SecretError,
    SecretNotFound,
    SecretProvider,
)

__all__ = [
    "ALGORITHM",
    "KEY_BYTES",
    "InvalidKeyMaterial",
    "KeyRing",
    "KeyWrapKey",
    "decryption_error",
    "encryption_kid",
    "new_key_value",
]

ALGORITHM = "A256KW"
KEY_BYTES = 32


class InvalidKeyMaterial(ServiceError):
    """A secret meant as a key-encryption key is not a base64-encoded 32-byte key."""

    code = "INVALID_KEY_MATERIAL"
    default_message = "A key-encryption key is not a 256-bit key."


def new_key_value() -> str:
    """A fresh secret value for a KEK: 32 random bytes, base64-encoded."""
    return base64.b64encode(token_bytes(KEY_BYTES)).decode("ascii")


class KeyWrapKey:
    """One KEK version: the interface azure-storage-blob calls (`wrap_key`, `unwrap_key`,
    `get_kid`, `get_key_wrap_algorithm`). Immutable; `repr` never shows the key."""

    __slots__ = ("_key", "_kid", "name", "version")

    def __init__(self, secret: Secret, *, kid: str | None = None) -> None:
        self._kid = kid or secret.id
        self.name = secret.name
        self.version = secret.version
        try:
            key = base64.b64decode(secret.value.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidKeyMaterial(
                f"The secret {secret.id} is not base64; a KEK is 32 random bytes, base64-encoded.",
                kid=self._kid,
            ) from exc
        if len(key) != KEY_BYTES:
            raise InvalidKeyMaterial(
                f"The secret {secret.id} holds {len(key)} bytes; a KEK is exactly {KEY_BYTES}.",
                kid=self._kid,
            )
        self._key = key

    def __repr__(self) -> str:
        return f"KeyWrapKey(kid={self._kid!r})"

    def wrap_key(self, key: bytes) -> bytes:
        """AES key wrap (RFC 3394) of `key` (16+ bytes, a multiple of 8)."""
        return aes_key_wrap(self._key, key)

    def unwrap_key(self, key: bytes, algorithm: str) -> bytes:
        """Undo `wrap_key`; `DecryptionFailed` for another algorithm or a wrong key."""
        if algorithm != ALGORITHM:
            raise DecryptionFailed(
                f"The content key was wrapped with {algorithm!r}; the key {self._kid} "
                f"unwraps {ALGORITHM} only.",
                kid=self._kid,
            )
        try:
            return aes_key_unwrap(self._key, key)
        except (InvalidUnwrap, ValueError) as exc:
            raise DecryptionFailed(
                f"The key {self._kid} does not unwrap this content key: a different key "
                "with the same id, or damaged encryption metadata.",
                kid=self._kid,
            ) from exc

    def get_kid(self) -> str:
        return self._kid

    def get_key_wrap_algorithm(self) -> str:
        return ALGORITHM


class KeyRing:
    """The versions of one KEK secret: the current key for writing, any version for reading."""

    def __init__(
        self,
        provider: SecretProvider,
        key_name: str,
        *,
        cache_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.key_name = key_name
        self._ttl = cache_ttl
        self._clock = clock
        self._current: tuple[float, KeyWrapKey] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyRing({self.provider!r}, {self.key_name!r})"

    def current(self) -> KeyWrapKey:
        """The newest version (re-read at most every `cache_ttl` seconds)."""
        with self._lock:
            if self._current is not None and self._current[0] > self._clock():
                return self._current[1]
        try:
            key = KeyWrapKey(self.provider.get(self.key_name))
        except SecretNotFound as exc:
            raise SecretNotFound(
                f"The key-encryption key {self.key_name} has no version yet (run ensure()).",
                secret=self.key_name,
            ) from exc
        self._remember(key)
        return key

    def resolve(self, kid: str) -> KeyWrapKey:
        """The exact version `kid` names: the `key_resolver_function` of the blob SDK."""
        try:
            ref = self.provider.parse_id(kid)
            if ref.name.lower() != self.key_name.lower():
                raise DecryptionFailed(
                    f"The data names the key {kid}, which is not a version of the "
                    f"key-encryption key {self.key_name}.",
                    kid=kid,
                )
            return KeyWrapKey(self.provider.get(ref.name, ref.version), kid=kid)
        except SecretDisabled as exc:
            raise DecryptionFailed(
                f"The key {kid} needed to decrypt this data is disabled.", kid=kid
            ) from exc
        except SecretNotFound as exc:
            raise DecryptionFailed(
                f"The key {kid} needed to decrypt this data does not exist "
                "(an unknown or deleted version, or another vault).",
                kid=kid,
            ) from exc
        except (SecretError, InvalidKeyMaterial) as exc:
            raise DecryptionFailed(
                f"The key {kid} needed to decrypt this data cannot be used: {exc.message}",
                kid=kid,
            ) from exc

    def rotate(self) -> KeyWrapKey:
        """Store 32 fresh random bytes as the newest version and return that key."""
        key = KeyWrapKey(self.provider.set(self.key_name, new_key_value()))
        self._remember(key)
        return key

    def ensure(self) -> KeyWrapKey:
        """The current key, creating the first version if the secret has none."""
        if not self.provider.versions(self.key_name):
            return self.rotate()
        return self.current()

    def _remember(self, key: KeyWrapKey) -> None:
        if self._ttl > 0:
            with self._lock:
                self._current = (self._clock() + self._ttl, key)


def encryption_kid(metadata: Mapping[str, str] | None) -> str | None:
    """The KEK id a client-side-encrypted blob was written under (from its metadata)."""
    for name, value in (metadata or {}).items():
        if name.lower() == "encryptiondata":
            try:
                kid = json.loads(value)["WrappedContentKey"]["KeyId"]
            except (ValueError, KeyError, TypeError):
                return None
            return kid if isinstance(kid, str) else None
    return None


def decryption_error(exc: BaseException, *, kid: str | None = None) -> PixelpipeError:
    """What a failed decrypting download really was.

    Pass the exception the blob SDK raised (its "Decryption failed." `HttpResponseError`).
    If one of ours is inside (`Unavailable` from Key Vault, `DecryptionFailed` from the
    resolver or `unwrap_key`) it is returned; otherwise (a damaged blob: AES-GCM tag mismatch,
    bad metadata, missing metadata under `require_encryption`) a `DecryptionFailed` naming `kid`.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, PixelpipeError):
            return current
        inner = getattr(current, "inner_exception", None)
        if isinstance(inner, BaseException):
            todo.append(inner)
        todo.extend((current.__cause__, current.__context__))
    where = f" with the key {kid}" if kid else ""
    return DecryptionFailed(
        f"Stored data could not be decrypted{where}: the data or its encryption metadata is "
        "damaged, or it was not encrypted.",
        kid=kid,
    )
