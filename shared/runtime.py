"""The process-wide objects every function uses, built once from settings.

Triggers call `runtime()`; tests and the local host build their own `Runtime` (against
Azurite) and install it with `use_runtime`.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential

from shared.config import Settings, load_settings
from shared.jobs.store import JobStore
from shared.security.auth import TokenValidator
from shared.security.kek import KeyRing
from shared.security.secrets import SecretProvider, secret_provider_from_settings
from shared.storage.blobs import BlobStore, EncryptedBlobStore
from shared.storage.clients import ORIGINALS, OUTBOX, QUARANTINE, RESULTS, StorageClients
from shared.storage.sas import SasIssuer

__all__ = ["Runtime", "runtime", "use_runtime"]


@dataclass
class Runtime:
    settings: Settings
    clients: StorageClients
    store: JobStore
    ring: KeyRing  # the key-encryption keys of private blobs
    private_blobs: EncryptedBlobStore  # originals, quarantine: client-side encrypted
    plain_blobs: BlobStore  # inbox (as uploaded), and outputs served by SAS
    sas: SasIssuer
    auth: TokenValidator
    secrets: SecretProvider  # Key Vault in Azure, settings (+ a local store) locally

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        credential: TokenCredential | None = None,
        auth: TokenValidator | None = None,
        secrets: SecretProvider | None = None,
    ) -> Runtime:
        clients = StorageClients(settings, credential)
        if secrets is None:
            local = {
                env: value
                for env, value in (
                    ("PIXELPIPE_SECRET_BLOB_KEK", settings.blob_kek_local),
                    ("PIXELPIPE_SECRET_WEBHOOK_SIGNING_KEY", settings.webhook_secret_local),
                )
                if value
            }
            secrets = secret_provider_from_settings(
                settings.secrets_provider,
                vault_url=settings.key_vault_url,
                local_values=local,
                local_store=settings.local_secrets_store or None,
                credential=credential or clients.token_credential,
                cache_ttl=settings.secrets_cache_seconds,
            )
        ring = KeyRing(secrets, settings.blob_kek_name)
        return cls(
            settings=settings,
            clients=clients,
            store=JobStore(clients),
            ring=ring,
            private_blobs=EncryptedBlobStore(clients.blob_service, ring),
            plain_blobs=BlobStore(clients.blob_service),
            sas=SasIssuer(clients),
            auth=auth or TokenValidator(settings),
            secrets=secrets,
        )

    def prepare(self) -> Runtime:
        """Create missing storage resources and the first key version (idempotent)."""
        self.clients.ensure_resources()
        self.ring.ensure()
        return self

    def blobs_for(self, container: str) -> BlobStore:
        """The store that reads and writes `container`: private blobs are encrypted; outputs
        are plain (served by SAS) unless PIXELPIPE_ENCRYPT_OUTPUTS keeps them encrypted."""
        if container in (ORIGINALS, QUARANTINE):
            return self.private_blobs
        if container in (RESULTS, OUTBOX) and self.settings.encrypt_outputs:
            return self.private_blobs
        return self.plain_blobs

    def send(self, queue: str, message: dict[str, Any]) -> None:
        """Enqueue a JSON message the way the Functions host expects it (base64)."""
        self.clients.queue(queue).send_message(json.dumps(message, separators=(",", ":")).encode())

    def send_many(self, queue: str, messages: list[dict[str, Any]]) -> None:
        """Enqueue several messages side by side (a fan-out of 20 operations costs about one
        round trip, not 20); raises the first failure once every send has finished."""
        if len(messages) <= 1:
            for message in messages:
                self.send(queue, message)
            return
        with ThreadPoolExecutor(min(_FAN_OUT_THREADS, len(messages))) as pool:
            futures = [pool.submit(self.send, queue, message) for message in messages]
        for future in futures:
            future.result()


_FAN_OUT_THREADS = 8

_lock = threading.Lock()
_current: Runtime | None = None


def runtime() -> Runtime:
    """The process's runtime: created from the environment on first use, resources ensured."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime.create(load_settings()).prepare()
        return _current


def use_runtime(value: Runtime | None) -> None:
    """Install a runtime (tests, the local host); None forgets it."""
    global _current
    with _lock:
        _current = value
