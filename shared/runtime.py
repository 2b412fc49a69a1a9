"""The process-wide objects every function uses, built once from settings.

Triggers call `runtime()`; tests and the local host build their own `Runtime` (against
Azurite) and install it with `use_runtime`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential

from shared.config import Settings, load_settings
from shared.jobs.store import JobStore
from shared.security.auth import TokenValidator
from shared.storage.blobs import BlobStore
from shared.storage.clients import StorageClients
from shared.storage.sas import SasIssuer

__all__ = ["Runtime", "runtime", "use_runtime"]


@dataclass
class Runtime:
    settings: Settings
    clients: StorageClients
    store: JobStore
    private_blobs: BlobStore  # originals and quarantine: never served by SAS
    public_blobs: BlobStore  # results and outbox: served by SAS links
    sas: SasIssuer
    auth: TokenValidator

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        credential: TokenCredential | None = None,
        auth: TokenValidator | None = None,
    ) -> Runtime:
        clients = StorageClients(settings, credential)
        blobs = BlobStore(clients.blob_service)
        return cls(
            settings,
            clients,
            JobStore(clients),
            blobs,
            blobs,
            SasIssuer(clients),
            auth or TokenValidator(settings),
        )

    def send(self, queue: str, message: dict[str, Any]) -> None:
        """Enqueue a JSON message the way the Functions host expects it (base64)."""
        self.clients.queue(queue).send_message(json.dumps(message, separators=(",", ":")).encode())


_lock = threading.Lock()
_current: Runtime | None = None


def runtime() -> Runtime:
    """The process's runtime: created from the environment on first use, resources ensured."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime.create(load_settings())
            _current.clients.ensure_resources()
        return _current


def use_runtime(value: Runtime | None) -> None:
    """Install a runtime (tests, the local host); None forgets it."""
    global _current
    with _lock:
        _current = value
