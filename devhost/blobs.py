"""The Event Grid blob trigger, emulated: Azurite emits no Event Grid events, so the local host
watches the container itself.

Every `POLL` seconds the watcher lists the trigger's container; each blob version (name +
ETag) not seen before fires the function once, with a real `func.InputStream`, like one
`BlobCreated` event. Receipts live in an Azurite table, so a restarted host does not fire
again for blobs it already handled. A failing invocation is retried on later polls, up to
`MAX_ATTEMPTS` times (Event Grid retries deliveries too), then given up with a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.functions.blob import InputStream as InputStreamBinding
from azure.storage.blob import BlobServiceClient

__all__ = ["BlobWatcher"]

log = logging.getLogger("devhost.blobs")

POLL = 1.0
MAX_ATTEMPTS = 5
RECEIPTS = "devhostblobreceipts"

Handler = Callable[[func.InputStream], Awaitable[Any]]


class BlobWatcher:
    def __init__(
        self,
        blobs: BlobServiceClient,
        tables: TableServiceClient,
        path: str,
        handler: Handler,
        *,
        name: str,
        poll: float = POLL,
    ) -> None:
        self.container_name, _, _ = path.partition("/")
        self.container = blobs.get_container_client(self.container_name)
        self.receipts = tables.get_table_client(RECEIPTS)
        self.tables = tables
        self.handler = handler
        self.name = name
        self.poll = poll
        self.attempts: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self.tables.create_table_if_not_exists, RECEIPTS)
        try:
            await asyncio.to_thread(self.container.create_container)
        except ResourceExistsError:
            pass
        while not stop.is_set():
            try:
                await self.scan()
            except AzureError as exc:
                log.warning("%s: scan failed (%s); retrying", self.container_name, exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.poll)
            except TimeoutError:
                pass

    async def scan(self) -> int:
        """Fire once for every blob version not handled yet; how many fired."""
        blobs = await asyncio.to_thread(
            lambda: list(self.container.list_blobs(include=["metadata"]))
        )
        fired = 0
        for blob in blobs:
            key = hashlib.sha256(f"{blob.name}\n{blob.etag}".encode()).hexdigest()
            if await asyncio.to_thread(self._seen, key):
                continue
            if await self._fire(blob, key):
                fired += 1
        return fired

    def _seen(self, key: str) -> bool:
        try:
            self.receipts.get_entity(self.container_name, key)
            return True
        except ResourceNotFoundError:
            return False

    async def _fire(self, blob: Any, key: str) -> bool:
        started = time.perf_counter()
        client = self.container.get_blob_client(blob.name)
        try:
            data = await asyncio.to_thread(lambda: client.download_blob().readall())
        except ResourceNotFoundError:
            return False  # gone before we got to it
        stream = InputStreamBinding(
            data=data,
            name=f"{self.container_name}/{blob.name}",
            uri=client.url,
            length=len(data),
            blob_properties={"ETag": blob.etag, "Length": len(data)},
            metadata=dict(blob.metadata or {}),
        )
        outcome = "ok"
        try:
            await self.handler(stream)
        except Exception as exc:
            attempts = self.attempts[key] = self.attempts.get(key, 0) + 1
            outcome = f"failed ({attempts}/{MAX_ATTEMPTS}): {type(exc).__name__}: {exc}"
            if attempts < MAX_ATTEMPTS:
                return False
        await asyncio.to_thread(
            self.receipts.upsert_entity,
            {
                "PartitionKey": self.container_name,
                "RowKey": key,
                "Blob": blob.name,
                "Outcome": outcome[:1000],
            },
        )
        log.info(
            '{"function": "%s", "blob": "%s", "ms": %.1f, "outcome": "%s"}',
            self.name,
            blob.name,
            (time.perf_counter() - started) * 1000,
            outcome.replace('"', "'"),
        )
        return outcome == "ok"
