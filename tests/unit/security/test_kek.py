"""KeyWrapKey and KeyRing: RFC 3394 vectors, errors, rotation, and the real blob SDK's use of them.

The blob tests use azure-storage-blob's own client-side encryption v2 code, twice: through its
`_encryption` helpers, and through a real `BlobClient` whose HTTP requests land on a tiny
in-memory Put Blob/Get Blob endpoint (a requests adapter, no storage emulator). The end-to-end
tests against Azurite live elsewhere. The Key Vault ring runs against the loopback fake (a
protocol test, not Key Vault).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import pytest
import requests
import urllib3
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobClient
from azure.storage.blob._encryption import decrypt_blob, encrypt_blob

from shared.errors import DecryptionFailed, Unavailable
from shared.security.kek import (
    ALGORITHM,
    InvalidKeyMaterial,
    KeyRing,
    KeyWrapKey,
    decryption_error,
    encryption_kid,
    new_key_value,
)
from shared.security.secrets import (
    KeyVaultSecretProvider,
    LocalSecretProvider,
    Secret,
    SecretNotFound,
    SecretProvider,
)
from tests.support.keyvault_fake import FakeKeyVault
from tests.unit.security.conftest import ManualClock


def secret_of(key: bytes, version: str = "v1") -> Secret:
    return Secret(
        name="blob-kek",
        value=base64.b64encode(key).decode(),
        version=version,
        id=f"local://secrets/blob-kek/{version}",
    )


# -- KeyWrapKey ---------------------------------------------------------------------------------
KEK_256 = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")

# RFC 3394 section 4: 4.3 (128 bits of key data), 4.5 (192), 4.6 (256), all with a 256-bit KEK.
RFC3394_VECTORS = [
    (
        "00112233445566778899AABBCCDDEEFF",
        "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7",
    ),
    (
        "00112233445566778899AABBCCDDEEFF0001020304050607",
        "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1",
    ),
    (
        "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
        "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
    ),
]


@pytest.mark.parametrize(("plain", "wrapped"), RFC3394_VECTORS)
def test_rfc3394_vectors(plain: str, wrapped: str):
    kek = KeyWrapKey(secret_of(KEK_256))
    assert kek.wrap_key(bytes.fromhex(plain)) == bytes.fromhex(wrapped)
    assert kek.unwrap_key(bytes.fromhex(wrapped), "A256KW") == bytes.fromhex(plain)


def test_interface_the_blob_sdk_calls():
    secret = secret_of(KEK_256)
    kek = KeyWrapKey(secret)
    assert kek.get_kid() == secret.id == "local://secrets/blob-kek/v1"
    assert kek.get_key_wrap_algorithm() == ALGORITHM == "A256KW"
    # what encryption v2 wraps: "2.0" padded to 8 bytes, then a 32-byte content key
    cek = b"2.0\0\0\0\0\0" + bytes(range(32))
    assert kek.unwrap_key(kek.wrap_key(cek), "A256KW") == cek
    assert KeyWrapKey(secret, kid="other-spelling").get_kid() == "other-spelling"
    assert KEK_256.hex() not in repr(kek) and secret.value not in repr(kek)


def test_unwrap_with_a_wrong_key_or_algorithm_names_the_kid():
    wrapped = KeyWrapKey(secret_of(KEK_256)).wrap_key(bytes(40))
    other = KeyWrapKey(secret_of(bytes(32), "v2"))
    with pytest.raises(DecryptionFailed) as err:
        other.unwrap_key(wrapped, "A256KW")
    assert err.value.kid == "local://secrets/blob-kek/v2" and err.value.kid in err.value.message
    assert err.value.to_dict()["kid"] == err.value.kid

    kek = KeyWrapKey(secret_of(KEK_256))
    with pytest.raises(DecryptionFailed) as err:
        kek.unwrap_key(wrapped, "RSA-OAEP")
    assert "RSA-OAEP" in err.value.message
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(DecryptionFailed):
        kek.unwrap_key(tampered, "A256KW")
    with pytest.raises(DecryptionFailed):
        kek.unwrap_key(b"short", "A256KW")


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(bytes(16)).decode(), ""])
def test_key_material_must_be_32_base64_bytes(value: str):
    with pytest.raises(InvalidKeyMaterial) as err:
        KeyWrapKey(Secret("blob-kek", value, "v1", "local://secrets/blob-kek/v1"))
    assert err.value.code == "INVALID_KEY_MATERIAL"


def test_new_key_values_are_fresh_32_byte_keys():
    values = {new_key_value() for _ in range(20)}
    assert len(values) == 20
    assert all(len(base64.b64decode(v, validate=True)) == 32 for v in values)


# -- KeyRing, against both providers ------------------------------------------------------------
@pytest.fixture(params=["local", "keyvault"])
def ring_provider(request: pytest.FixtureRequest, tmp_path: Any) -> SecretProvider:
    if request.param == "local":
        return LocalSecretProvider({}, store_path=tmp_path / "secrets.json")
    provider: KeyVaultSecretProvider = request.getfixturevalue("provider")
    return provider


def test_ensure_creates_the_first_version_once(ring_provider: SecretProvider):
    ring = KeyRing(ring_provider, "blob-kek")
    with pytest.raises(SecretNotFound):
        ring.current()
    first = ring.ensure()
    assert ring.ensure().get_kid() == first.get_kid()
    assert len(ring_provider.versions("blob-kek")) == 1
    assert ring.current().get_kid() == first.get_kid()


def test_rotation_keeps_old_kids_resolvable(ring_provider: SecretProvider):
    ring = KeyRing(ring_provider, "blob-kek")
    old = ring.ensure()
    wrapped = old.wrap_key(bytes(range(40)))
    new = ring.rotate()
    assert new.get_kid() != old.get_kid()
    assert ring.current().get_kid() == new.get_kid()
    resolved = ring.resolve(old.get_kid())
    assert resolved.get_kid() == old.get_kid()
    assert resolved.unwrap_key(wrapped, "A256KW") == bytes(range(40))
    with pytest.raises(DecryptionFailed):
        new.unwrap_key(wrapped, "A256KW")


def test_a_disabled_or_unknown_version_fails_naming_the_kid(ring_provider: SecretProvider):
    ring = KeyRing(ring_provider, "blob-kek")
    old = ring.ensure()
    ring.rotate()
    ring_provider.disable("blob-kek", old.version)
    with pytest.raises(DecryptionFailed) as err:
        ring.resolve(old.get_kid())
    assert err.value.kid == old.get_kid() and old.get_kid() in err.value.message
    assert "disabled" in err.value.message and not err.value.retryable

    unknown = old.get_kid().rsplit("/", 1)[0] + "/" + "0" * 32
    with pytest.raises(DecryptionFailed) as err:
        ring.resolve(unknown)
    assert err.value.kid == unknown and unknown in err.value.message


def test_resolve_refuses_other_secrets_and_other_vaults(ring_provider: SecretProvider):
    ring = KeyRing(ring_provider, "blob-kek")
    key = ring.ensure()
    other = ring_provider.set("database-password", "hunter2")
    foreign = [
        other.id,  # another secret of the same vault: never used as a key
        "https://attacker.example/secrets/blob-kek/" + key.version,
        "local://secrets/../blob-kek/" + key.version,
        "",
    ]
    for kid in foreign:
        with pytest.raises(DecryptionFailed) as err:
            ring.resolve(kid)
        assert err.value.kid == kid


def test_current_is_cached_briefly(ring_provider: SecretProvider, clock: ManualClock):
    ring = KeyRing(ring_provider, "blob-kek", cache_ttl=60, clock=clock)
    first = ring.ensure()
    newer = ring_provider.set("blob-kek", new_key_value())  # another instance rotated
    assert ring.current().get_kid() == first.get_kid()
    clock.advance(61)
    if isinstance(ring_provider, KeyVaultSecretProvider):
        ring_provider.clear_cache()  # the provider's own TTL is tested with the provider
    assert ring.current().get_kid() == newer.id


def test_a_deleted_key_fails_and_a_throttled_vault_stays_retryable(
    vault: FakeKeyVault, provider: KeyVaultSecretProvider
):
    ring = KeyRing(provider, "blob-kek")
    key = ring.ensure()
    provider.clear_cache()
    vault.fail_next(50, 429)
    with pytest.raises(Unavailable):  # not DecryptionFailed: the message must come back later
        ring.resolve(key.get_kid())
    vault.clear_faults()
    vault.delete_secret("blob-kek")
    with pytest.raises(DecryptionFailed) as err:
        ring.resolve(key.get_kid())
    assert err.value.kid == key.get_kid()


# -- the blob SDK's encryption v2 code ----------------------------------------------------------
def test_sdk_helpers_encrypt_under_current_and_decrypt_through_the_resolver(tmp_path: Any):
    ring = KeyRing(LocalSecretProvider({}, store_path=tmp_path / "s.json"), "blob-kek")
    old = ring.ensure()
    data = bytes(range(256)) * 20000  # 5.1 MB: two 4 MiB encryption regions
    metadata, ciphertext = encrypt_blob(data, ring.current(), "2.0")
    info = json.loads(metadata)
    assert info["EncryptionAgent"] == {"Protocol": "2.0", "EncryptionAlgorithm": "AES_GCM_256"}
    assert info["WrappedContentKey"]["KeyId"] == old.get_kid()
    assert info["WrappedContentKey"]["Algorithm"] == "A256KW"
    assert encryption_kid({"EncryptionData": metadata}) == old.get_kid()

    ring.rotate()
    headers = {"x-ms-meta-encryptiondata": metadata}
    assert decrypt_blob(True, None, ring.resolve, ciphertext, 0, len(data), headers) == data

    # a blob the current key wrote also decrypts, and is not readable under the old kid
    metadata2, ciphertext2 = encrypt_blob(data, ring.current(), "2.0")
    assert encryption_kid({"encryptiondata": metadata2}) == ring.current().get_kid()
    headers2 = {"x-ms-meta-encryptiondata": metadata2}
    assert decrypt_blob(True, None, ring.resolve, ciphertext2, 0, len(data), headers2) == data
    with pytest.raises(ValueError, match="does not match the id"):
        decrypt_blob(True, old, None, ciphertext2, 0, len(data), headers2)


class MemoryBlobAdapter(requests.adapters.BaseAdapter):
    """Just enough of Put Blob and Get Blob for one client-side-encrypted block blob."""

    def __init__(self) -> None:
        super().__init__()
        self.blobs: dict[str, tuple[bytes, dict[str, str]]] = {}

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        path = request.path_url.split("?")[0]
        headers = {
            "ETag": '"0x8DC0000000000001"',
            "Last-Modified": formatdate(usegmt=True),
            "x-ms-request-id": "memory",
            "x-ms-version": str(request.headers.get("x-ms-version")),
        }
        if request.method == "PUT":
            body = request.body if isinstance(request.body, bytes) else b"".join(request.body)
            meta = {k: v for k, v in request.headers.items() if k.lower().startswith("x-ms-meta-")}
            self.blobs[path] = (body, meta)
            return self._response(request, 201, headers, b"")
        if request.method == "HEAD" and path in self.blobs:  # Get Blob Properties
            body, meta = self.blobs[path]
            headers.update(meta)
            headers.update({"x-ms-blob-type": "BlockBlob", "Content-Length": str(len(body))})
            return self._response(request, 200, headers, b"", length=len(body))
        if request.method == "GET" and path in self.blobs:
            body, meta = self.blobs[path]
            first, last = 0, len(body) - 1
            if "x-ms-range" in request.headers:
                start, end = request.headers["x-ms-range"].split("=")[1].split("-")
                first, last = int(start), min(int(end), len(body) - 1)
            part = body[first : last + 1]
            headers.update(meta)
            headers.update(
                {
                    "x-ms-blob-type": "BlockBlob",
                    "Content-Range": f"bytes {first}-{last}/{len(body)}",
                    "Content-Type": "application/octet-stream",
                }
            )
            return self._response(request, 206, headers, part)
        return self._response(request, 404, {"x-ms-error-code": "BlobNotFound"}, b"")

    def _response(
        self,
        request: requests.PreparedRequest,
        status: int,
        headers: dict[str, str],
        body: bytes,
        *,
        length: int | None = None,
    ) -> requests.Response:
        headers = {**headers, "Content-Length": str(len(body) if length is None else length)}
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers=headers,
            status=status,
            preload_content=False,
            request_method=request.method,
        )
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def blob_for() -> Iterator[Callable[[KeyRing], BlobClient]]:
    session = requests.Session()
    session.mount("https://", MemoryBlobAdapter())

    def make(ring: KeyRing) -> BlobClient:
        return BlobClient(
            "https://pixelpipe.blob.core.windows.net",
            "originals",
            "photo.jpg",
            transport=RequestsTransport(session=session, session_owner=False),
            require_encryption=True,
            encryption_version="2.0",
            key_encryption_key=ring.current(),
            key_resolver_function=ring.resolve,
            retry_total=0,
        )

    yield make
    session.close()


def test_blob_client_round_trip_across_rotation(
    blob_for: Callable[[KeyRing], BlobClient], ring_provider: SecretProvider
):
    ring = KeyRing(ring_provider, "blob-kek")
    old = ring.ensure()
    data = b"\xff\xd8 original image bytes " * 1000
    blob_for(ring).upload_blob(data)
    ring.rotate()

    client = blob_for(ring)  # a new client after rotation: writes with the new key
    assert client.key_encryption_key.get_kid() != old.get_kid()
    assert client.download_blob().readall() == data
    assert encryption_kid(client.get_blob_properties().metadata) == old.get_kid()


def test_blob_client_failures_are_recovered_from_the_sdks_generic_error(
    blob_for: Callable[[KeyRing], BlobClient],
    ring_provider: SecretProvider,
    monkeypatch: pytest.MonkeyPatch,
):
    ring = KeyRing(ring_provider, "blob-kek")
    old = ring.ensure()
    blob_for(ring).upload_blob(b"secret pixels" * 100)
    ring.rotate()
    ring_provider.disable("blob-kek", old.version)

    # The SDK retries a failed decryption of the first chunk itself: three downloads, three
    # resolver calls, with a hard-coded one-second sleep in between (skipped here).
    sleeps: list[float] = []
    monkeypatch.setattr("azure.storage.blob._download.time.sleep", sleeps.append)
    asked: list[str] = []
    resolve = ring.resolve
    monkeypatch.setattr(ring, "resolve", lambda kid: asked.append(kid) or resolve(kid))

    with pytest.raises(HttpResponseError) as err:
        blob_for(ring).download_blob().readall()
    assert "Decryption failed." in str(err.value)  # what the SDK says, whatever happened
    assert asked == [old.get_kid()] * 3 and sleeps == [1, 1]
    ours = decryption_error(err.value, kid=old.get_kid())
    assert isinstance(ours, DecryptionFailed)
    assert ours.kid == old.get_kid() and "disabled" in ours.message


def test_decryption_error_keeps_unavailable_and_names_the_kid_otherwise():
    unavailable = Unavailable("Key Vault throttled.", retry_after=7)
    wrapped = HttpResponseError(message="Decryption failed.", error=unavailable)
    assert decryption_error(wrapped) is unavailable
    try:
        try:
            raise ValueError("InvalidTag")
        except ValueError as inner:
            raise HttpResponseError(message="Decryption failed.") from inner
    except HttpResponseError as exc:
        generic = decryption_error(exc, kid="local://secrets/blob-kek/v1")
    assert isinstance(generic, DecryptionFailed)
    assert generic.kid == "local://secrets/blob-kek/v1" and generic.kid in generic.message
    assert encryption_kid({"encryptiondata": "not json"}) is None
    assert encryption_kid(None) is None
