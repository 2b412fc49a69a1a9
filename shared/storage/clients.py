"""Storage clients, built once from settings; the names of every container, queue and table.

One storage account holds everything (it is also the Functions host's AzureWebJobsStorage):

| kind      | name          | holds                                                          |
|-----------|---------------|----------------------------------------------------------------|
| container | originals     | `<job>/source`: uploaded images (client-side encrypted)        |
| container | results       | `<job>/<index>-<name>.<ext>` outputs and `<job>/manifest.json` |
| container | inbox         | blob drops: `<name>`; upload URLs: `uploads/<job>/<file>`      |
| container | outbox        | blob-drop outputs: `<name without extension>/...`, manifest    |
| container | quarantine    | refused blob drops and their `.error.json` records              |
| queue     | jobs          | one message per accepted job (dispatch)                         |
| queue     | ops           | one message per operation (worker)                              |
| queue     | ops-poison    | operations that failed max-dequeue-count times                  |
| table     | jobs          | per job: a `job` row and one `op-NNNN` row per operation       |
| table     | jobindex      | `owner:<hash>` rows (listing, newest first), `idem:<hash>` rows |

Locally the connection string comes from `AzureWebJobsStorage` (Azurite). In Azure,
shared-key access is disabled: the service URIs come from `AzureWebJobsStorage__*` and the
credential is a managed identity (`DefaultAzureCredential`, with the user-assigned identity's
client id when given).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from azure.core.credentials import AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    QueueServiceClient,
)

from shared.config import Settings

__all__ = [
    "CONTAINERS",
    "INBOX",
    "JOBS_QUEUE",
    "JOBS_TABLE",
    "JOB_INDEX_TABLE",
    "OPS_POISON_QUEUE",
    "OPS_QUEUE",
    "ORIGINALS",
    "OUTBOX",
    "QUARANTINE",
    "QUEUES",
    "RESULTS",
    "TABLES",
    "StorageClients",
]

ORIGINALS, RESULTS, INBOX, OUTBOX, QUARANTINE = (
    "originals",
    "results",
    "inbox",
    "outbox",
    "quarantine",
)
JOBS_QUEUE, OPS_QUEUE, OPS_POISON_QUEUE = "jobs", "ops", "ops-poison"
JOBS_TABLE, JOB_INDEX_TABLE = "jobs", "jobindex"
CONTAINERS = (ORIGINALS, RESULTS, INBOX, OUTBOX, QUARANTINE)
QUEUES = (JOBS_QUEUE, OPS_QUEUE, OPS_POISON_QUEUE)
TABLES = (JOBS_TABLE, JOB_INDEX_TABLE)


def _parse_connection_string(text: str) -> dict[str, str]:
    parts = {}
    for item in text.split(";"):
        if "=" in item:
            key, _, value = item.partition("=")
            parts[key.strip()] = value.strip()
    return parts


# Azurite's well-known development account (public, documented by Microsoft).
_DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


DOWNLOAD_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Endpoints:
    blob: str
    queue: str
    table: str
    account: str
    key: str | None  # account key (local/dev); None with a token credential


def endpoints_from_settings(settings: Settings) -> Endpoints:
    text = settings.storage_connection.strip()
    if text:
        if text.lower().startswith("usedevelopmentstorage=true"):
            text = (
                f"DefaultEndpointsProtocol=http;AccountName={_DEV_ACCOUNT};AccountKey="
                f"{_DEV_KEY};BlobEndpoint=http://127.0.0.1:10000/{_DEV_ACCOUNT};"
                f"QueueEndpoint=http://127.0.0.1:10001/{_DEV_ACCOUNT};"
                f"TableEndpoint=http://127.0.0.1:10002/{_DEV_ACCOUNT};"
            )
        parts = _parse_connection_string(text)
        account = parts.get("AccountName", "")
        suffix = parts.get("EndpointSuffix", "core.windows.net")
        scheme = parts.get("DefaultEndpointsProtocol", "https")

        def endpoint(kind: str) -> str:
            explicit = parts.get(f"{kind.capitalize()}Endpoint")
            return (explicit or f"{scheme}://{account}.{kind}.{suffix}").rstrip("/")

        return Endpoints(
            endpoint("blob"), endpoint("queue"), endpoint("table"), account, parts.get("AccountKey")
        )
    account = settings.storage_account_name
    if not (account or settings.storage_blob_uri):
        raise ValueError(
            "No storage configured: set AzureWebJobsStorage (a connection string) "
            "or AzureWebJobsStorage__accountName / __blobServiceUri."
        )

    def uri(explicit: str, kind: str) -> str:
        return (explicit or f"https://{account}.{kind}.core.windows.net").rstrip("/")

    blob = uri(settings.storage_blob_uri, "blob")
    return Endpoints(
        blob,
        uri(settings.storage_queue_uri, "queue"),
        uri(settings.storage_table_uri, "table"),
        account or blob.split("//", 1)[-1].split(".", 1)[0],
        None,
    )


class StorageClients:
    """Lazily built, process-wide service clients (they are thread-safe and pool connections)."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        self.settings = settings
        self.endpoints = endpoints_from_settings(settings)
        self._credential = credential
        self._ready = False
        self._lock = threading.Lock()

    # -- credentials -------------------------------------------------------------------------

    @cached_property
    def token_credential(self) -> TokenCredential | None:
        """The managed identity in Azure; None when an account key is configured."""
        if self.endpoints.key is not None:
            return None
        if self._credential is not None:
            return self._credential
        from azure.identity import DefaultAzureCredential

        client_id = self.settings.storage_client_id or None
        return DefaultAzureCredential(managed_identity_client_id=client_id)

    def _credential_for(self, named: bool = False) -> Any:
        if self.endpoints.key is not None:
            if named:
                return AzureNamedKeyCredential(self.endpoints.account, self.endpoints.key)
            return {"account_name": self.endpoints.account, "account_key": self.endpoints.key}
        return self.token_credential

    # -- service clients ---------------------------------------------------------------------

    @cached_property
    def blob_service(self) -> BlobServiceClient:
        # Downloads are read in 1 MiB pieces, not azure-core's default 4 KiB: a 12 MP
        # original is then a few reads instead of ~700 trips through the Python stack.
        return BlobServiceClient(
            self.endpoints.blob,
            credential=self._credential_for(),
            connection_data_block_size=DOWNLOAD_BLOCK_BYTES,
        )

    @cached_property
    def queue_service(self) -> QueueServiceClient:
        return QueueServiceClient(self.endpoints.queue, credential=self._credential_for())

    @cached_property
    def table_service(self) -> TableServiceClient:
        return TableServiceClient(self.endpoints.table, credential=self._credential_for(True))

    def container(self, name: str) -> ContainerClient:
        return self.blob_service.get_container_client(name)

    def queue(self, name: str) -> QueueClient:
        """A queue client speaking the Functions host's base64 message encoding."""
        return self.queue_service.get_queue_client(
            name,
            message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )

    def table(self, name: str) -> TableClient:
        return self.table_service.get_table_client(name)

    def ensure_resources(self) -> None:
        """Create every container, queue and table if missing (once per process)."""
        with self._lock:
            if self._ready:
                return
            for name in CONTAINERS:
                try:
                    self.container(name).create_container()
                except ResourceExistsError:
                    pass
            for name in QUEUES:
                try:
                    self.queue(name).create_queue()
                except ResourceExistsError:
                    pass
            for name in TABLES:
                self.table_service.create_table_if_not_exists(name)
            self._ready = True
