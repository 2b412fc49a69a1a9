"""Blob access with the two rules every writer in pixelpipe follows.

1. Writes are create-only (`If-None-Match: *`). Every output has a deterministic name, so a
   retried write (a worker killed after writing, a PUT whose response was lost) hits 409; the
   blob's stored `sha256` metadata is then compared with what we meant to write, and a match
   counts as success. Nothing is ever written twice.
2. Metadata is merged, never replaced: client-side encryption keeps its envelope in metadata,
   and a wholesale `set_blob_metadata` would destroy it (the blob could never be decrypted).
   `merge_metadata` is the only metadata writer, and it uses the blob's ETag so that two
   concurrent merges cannot lose each other's keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from shared.errors import NotFound, Unavailable

__all__ = ["BlobStore", "PutResult", "sha256_hex"]

log = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PutResult:
    created: bool  # False: it already existed
    matched: bool  # the existing (or new) blob holds exactly these bytes
    sha256: str


class BlobStore:
    """Reads and create-only writes on one blob service client.

    Give it a client configured for client-side encryption to read and write private blobs
    (originals, quarantine), and a plain one for outputs that users download through SAS.
    """

    def __init__(self, service: BlobServiceClient) -> None:
        self.service = service

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
        blob = self.service.get_blob_client(container, name)
        try:
            blob.upload_blob(
                data,
                overwrite=False,
                metadata={**(metadata or {}), "sha256": digest},
                content_settings=ContentSettings(
                    content_type=content_type, content_disposition=content_disposition
                ),
            )
            return PutResult(True, True, digest)
        except ResourceExistsError:
            stored = (blob.get_blob_properties().metadata or {}).get("sha256")
            if stored != digest:
                log.warning("blob %s/%s exists with different content", container, name)
            return PutResult(False, stored == digest, digest)

    def put_json(self, container: str, name: str, document: Any) -> PutResult:
        data = json.dumps(document, indent=2, sort_keys=True).encode()
        return self.put(container, name, data, content_type="application/json")

    def get(self, container: str, name: str) -> bytes:
        try:
            return self.service.get_blob_client(container, name).download_blob().readall()
        except ResourceNotFoundError:
            raise NotFound(f"{container}/{name} does not exist.") from None

    def properties(self, container: str, name: str) -> Any:
        try:
            return self.service.get_blob_client(container, name).get_blob_properties()
        except ResourceNotFoundError:
            raise NotFound(f"{container}/{name} does not exist.") from None

    def exists(self, container: str, name: str) -> bool:
        return bool(self.service.get_blob_client(container, name).exists())

    def delete(self, container: str, name: str) -> None:
        try:
            self.service.get_blob_client(container, name).delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            pass

    def delete_prefix(self, container: str, prefix: str) -> int:
        client = self.service.get_container_client(container)
        names = [b.name for b in client.list_blobs(name_starts_with=prefix)]
        for name in names:
            self.delete(container, name)
        return len(names)

    def copy_from_url(
        self, source_url: str, container: str, name: str, *, timeout: float = 60.0
    ) -> None:
        """Server-side copy (no bytes through this process); waits until it completes."""
        import time

        blob = self.service.get_blob_client(container, name)
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
        blob = self.service.get_blob_client(container, name)
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
