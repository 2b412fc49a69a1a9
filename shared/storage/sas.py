"""Short-lived links to single blobs.

* Read links (outputs): read-only, one blob, valid `PIXELPIPE_SAS_TTL_SECONDS` (15 min),
  start time backdated by `PIXELPIPE_SAS_CLOCK_SKEW_SECONDS` so a client whose clock runs
  behind can still use them, HTTPS-only in Azure, with `Content-Disposition: attachment` and
  the output's real content type (the browser never sniffs or renders it inline).
* Upload links (`POST /api/uploads`): create + write only, one blob in `inbox`, no read.

Which key signs the SAS follows the credential: with a token credential (Azure, where
shared-key access is disabled) a user-delegation key, fetched for a few hours and cached;
with an account key (Azurite locally) the account key.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from azure.storage.blob import BlobSasPermissions, UserDelegationKey, generate_blob_sas

from shared.filenames import ascii_name, base_name
from shared.storage.clients import StorageClients

__all__ = ["SasIssuer", "SignedUrl", "content_disposition"]

DELEGATION_KEY_LIFETIME = timedelta(hours=6)
DELEGATION_KEY_REFRESH = timedelta(hours=1)  # refresh when less than this is left


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime

    @property
    def expires_iso(self) -> str:
        return self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266/5987).

    Directory parts, control characters and quotes never reach the header.
    """
    base = base_name(filename, "download")
    fallback = ascii_name(base, "download")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


class SasIssuer:
    def __init__(self, clients: StorageClients) -> None:
        self.clients = clients
        self.settings = clients.settings
        self._key: UserDelegationKey | None = None
        self._key_expiry: datetime | None = None
        self._lock = threading.Lock()

    def _signing(self, now: datetime) -> dict[str, Any]:
        endpoints = self.clients.endpoints
        if endpoints.key is not None:
            return {"account_key": endpoints.key}
        with self._lock:
            if (
                self._key is None
                or self._key_expiry is None
                or (self._key_expiry - now < DELEGATION_KEY_REFRESH)
            ):
                start = now - timedelta(seconds=self.settings.sas_clock_skew_seconds)
                expiry = now + DELEGATION_KEY_LIFETIME
                self._key = self.clients.blob_service.get_user_delegation_key(start, expiry)
                self._key_expiry = expiry
            return {"user_delegation_key": self._key}

    def _sign(
        self,
        container: str,
        blob: str,
        permission: BlobSasPermissions,
        ttl: int,
        now: datetime | None,
        **extra: Any,
    ) -> SignedUrl:
        now = now or datetime.now(UTC)
        expiry = now + timedelta(seconds=ttl)
        start = now - timedelta(seconds=self.settings.sas_clock_skew_seconds)
        base = self.clients.endpoints.blob
        token = generate_blob_sas(
            account_name=self.clients.endpoints.account,
            container_name=container,
            blob_name=blob,
            permission=permission,
            expiry=expiry,
            start=start,
            protocol="https" if base.startswith("https://") else None,
            **self._signing(now),
            **extra,
        )
        url = f"{base}/{container}/{quote(blob, safe='/')}?{token}"
        return SignedUrl(url, expiry.replace(microsecond=0))

    def read_url(
        self,
        container: str,
        blob: str,
        *,
        filename: str,
        content_type: str,
        now: datetime | None = None,
    ) -> SignedUrl:
        return self._sign(
            container,
            blob,
            BlobSasPermissions(read=True),
            self.settings.sas_ttl_seconds,
            now,
            content_disposition=content_disposition(filename),
            content_type=content_type,
        )

    def upload_url(self, container: str, blob: str, *, now: datetime | None = None) -> SignedUrl:
        return self._sign(
            container,
            blob,
            BlobSasPermissions(create=True, write=True),
            self.settings.upload_url_ttl_seconds,
            now,
        )
