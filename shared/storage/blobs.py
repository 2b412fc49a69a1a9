"""Blob access with the two rules every writer in pixelpipe follows.

1. Writes are create-only (`If-None-Match: *`). Every output has a deterministic name, so a
   retried write (a worker killed after writing, a PUT whose response was lost) hits 409; the
   blob's stored `sha256` metadata is then compared with what we meant to write, and a match
   counts as success. Nothing is ever written twice.
2. Metadata is merged, never replaced: client-side encryption keeps its envelope in metadata,
   and a wholesale `set_blob_metadata` would destroy it (the blob could never be decrypted).
   `merge_metadata` is the only metadata writer, and it uses the blob's ETag so that two
   concurrent merges cannot lose each other's keys.

Private blobs (originals, quarantine) go through `EncryptedBlobStore`: azure-storage-blob
client-side encryption v2 (AES-256-GCM, a fresh content key per blob, wrapped by the current
key-encryption key from the `KeyRing`; the key's versioned id is stored with the blob, so
old blobs keep decrypting after rotation).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings

from shared.errors import DecryptionFailed, NotFound, PixelpipeError, Unavailable
from shared.security.kek import KeyRing, decryption_error, encryption_kid

__all__ = ["BlobStore", "EncryptedBlobStore", "PutResult", "sha256_hex"]

log = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PutResult:
    """What is stored now at the name: `sha256` and `size` describe the stored blob (None for
    a blob that pixelpipe did not write: it has no sha256 metadata)."""

    created: bool  # False: it already existed
    matched: bool  # the stored blob holds exactly these bytes
    sha256: str | None
    size: int


class BlobStore:
    """Reads and create-only writes of plain blobs (outputs served by SAS, the inbox)."""

    def __init__(self, service: BlobServiceClient) -> None:
        self.service = service

    def _blob(self, container: str, name: str) -> BlobClient:
        return self.service.get_blob_client(container, name)

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str,
        content_disposition: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Create `container/name` with `data`; an identical existing blob is a success."""
        digest = sha256_hex(data)
        blob = self._blob(container, name)
        try:
            blob.upload_blob(
                data,
                overwrite=False,
                metadata={**(metadata or {}), "sha256": digest},
                content_settings=ContentSettings(
                    content_type=content_type, content_disposition=content_disposition
                ),
            )
            return PutResult(True, True, digest, len(data))
        except ResourceExistsError:
            props = blob.get_blob_properties()
            stored = (props.metadata or {}).get("sha256")
            if stored != digest:
                log.warning("blob %s/%s exists with different content", container, name)
            return PutResult(False, stored == digest, stored, int(props.size))

    def put_json(self, container: str, name: str, document: Any) -> PutResult:
        data = json.dumps(document, indent=2, sort_keys=True).encode()
        return self.put(container, name, data, content_type="application/json")

    def get(self, container: str, name: str) -> bytes:
        try:
            return self._blob(container, name).download_blob().readall()
        except ResourceNotFoundError:
            raise NotFound(f"{container}/{name} does not exist.") from None

    def properties(self, container: str, name: str) -> Any:
        try:
            return self._blob(container, name).get_blob_properties()
        except ResourceNotFoundError:
            raise NotFound(f"{container}/{name} does not exist.") from None

    def delete(self, container: str, name: str) -> None:
        try:
            self._blob(container, name).delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            pass

    def copy_from_url(
        self, source_url: str, container: str, name: str, *, timeout: float = 60.0
    ) -> None:
        """Server-side copy (no bytes through this process); waits until it completes."""
        import time

        blob = self._blob(container, name)
        blob.start_copy_from_url(source_url)
        deadline = time.monotonic() + timeout
        while (status := blob.get_blob_properties().copy.status) == "pending":
            if time.monotonic() > deadline:
                raise Unavailable("A blob copy did not finish in time.")
            time.sleep(0.2)
        if status != "success":
            raise Unavailable(f"A blob copy ended {status}.")

    def merge_metadata(
        self, container: str, name: str, updates: Mapping[str, str], *, attempts: int = 5
    ) -> dict[str, str]:
        """Add or change metadata keys, keeping every other key (the encryption envelope)."""
        blob = self._blob(container, name)
        for _ in range(attempts):
            props = blob.get_blob_properties()
            merged = {**(props.metadata or {}), **updates}
            try:
                blob.set_blob_metadata(
                    merged, etag=props.etag, match_condition=MatchConditions.IfNotModified
                )
                return merged
            except ResourceModifiedError:
                continue  # someone else merged first: read again and retry
        raise Unavailable("The blob's metadata kept changing; retry later.")


class EncryptedBlobStore(BlobStore):
    """Client-side encryption v2 on every write, decryption on every read.

    Each blob client gets the ring's current key (so writes pick up a rotation within the
    ring's cache time) and the ring's resolver (so reads find the exact key version a blob
    names). Reads resolve the key before downloading: a missing or disabled key version fails
    at once with DECRYPTION_FAILED naming it, instead of after the SDK's own retries.
    """

    def __init__(self, service: BlobServiceClient, ring: KeyRing) -> None:
        super().__init__(service)
        self.ring = ring

    def _blob(self, container: str, name: str) -> BlobClient:
        client = self.service.get_blob_client(container, name)
        client.require_encryption = True
        client.encryption_version = "2.0"
        client.key_encryption_key = self.ring.current()
        client.key_resolver_function = self.ring.resolve
        return client

    def get(self, container: str, name: str) -> bytes:
        """The decrypted blob: two round trips (the SDK reads the envelope from the blob's
        properties, then downloads); a failure costs a third, to say exactly what failed."""
        blob = self._blob(container, name)
        try:
            return blob.download_blob().readall()
        except ResourceNotFoundError:
            raise NotFound(f"{container}/{name} does not exist.") from None
        except (HttpResponseError, ValueError) as exc:
            raise self._unreadable(blob, container, name, exc) from exc

    def _unreadable(
        self, blob: BlobClient, container: str, name: str, exc: BaseException
    ) -> PixelpipeError:
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return NotFound(f"{container}/{name} does not exist.")
        kid = encryption_kid(props.metadata)
        if kid is None:
            return DecryptionFailed(f"{container}/{name} is not encrypted; refusing to read it.")
        try:
            self.ring.resolve(kid)  # the key is gone or disabled: that is the error
        except PixelpipeError as missing:
            return missing
        return decryption_error(exc, kid=kid)
