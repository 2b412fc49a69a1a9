"""Queue triggers with the Functions host's semantics (host.json `extensions.queues`).

For each queue-triggered function, a listener:

- receives up to `batchSize` messages and fetches the next batch when the number still
  running drops to `newBatchThreshold` (so at most batchSize + newBatchThreshold run at once
  per process, as in the real host);
- polls again at once while messages come, and backs off exponentially (from 100 ms up to
  `maxPollingInterval`) while the queue is empty;
- wakes up at once when any process of the host sends a message to its queue
  (`devhost.wakeup.Doorbell`, the host's `SharedQueueWatcher`), so a job crossing an idle
  host does not wait out the backoff at every hop;
- keeps each running message invisible with a short, renewed lease, so the message of a
  process that dies reappears after `LEASE` seconds for another process to take;
- decodes `messageEncoding` (base64 by default) and passes a real `func.QueueMessage`;
- on success deletes the message; on failure makes it visible again after
  `visibilityTimeout`, and once it has been dequeued `maxDequeueCount` times moves it to
  `<queue>-poison` instead; a message that comes back dequeued more often than that (its
  processes kept dying) goes to `<queue>-poison` without running again.

Tests can inject faults per message (`devhost.faults`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as QueueMessageBinding
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient

from devhost.config import QueueSettings
from devhost.faults import find_fault, load_faults
from devhost.wakeup import Doorbell, idle_wait

__all__ = ["LEASE", "QueueListener"]

log = logging.getLogger("devhost.queues")

LEASE = float(os.environ.get("DEVHOST_QUEUE_LEASE", "15"))  # seconds, renewed while running
MIN_POLL = 0.1

Handler = Callable[[func.QueueMessage], Awaitable[Any]]


class QueueListener:
    def __init__(
        self,
        service: QueueServiceClient,
        queue: str,
        handler: Handler,
        settings: QueueSettings,
        *,
        name: str,
        lease: float = LEASE,
        doorbell: Doorbell | None = None,
    ) -> None:
        self.queue_name = queue
        self.queue: QueueClient = service.get_queue_client(queue)
        self.poison: QueueClient = service.get_queue_client(f"{queue}-poison")
        self.handler = handler
        self.settings = settings
        self.name = name
        self.lease = lease
        self.running: set[asyncio.Task[None]] = set()
        self.faults = load_faults()
        self.doorbell = doorbell

    async def _ensure(self) -> None:
        for client in (self.queue, self.poison):
            try:
                await asyncio.to_thread(client.create_queue)
            except ResourceExistsError:
                pass

    async def run(self, stop: asyncio.Event) -> None:
        await self._ensure()
        idle = MIN_POLL
        while not stop.is_set():
            if len(self.running) > self.settings.new_batch_threshold:
                await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                batch = await asyncio.to_thread(self._receive)
            except AzureError as exc:  # storage restarting: keep trying
                log.warning("%s: receive failed (%s); retrying", self.queue_name, exc)
                batch = []
            if batch:
                idle = MIN_POLL
                for message in batch:
                    task = asyncio.create_task(self._process(message))
                    self.running.add(task)
                    task.add_done_callback(self.running.discard)
                continue
            if await idle_wait(self.doorbell, self.queue_name, stop, idle):
                idle = MIN_POLL  # a message was just sent here: take it now
                continue
            idle = min(idle * 2, max(MIN_POLL, self.settings.max_polling_interval))
        if self.running:
            await asyncio.wait(self.running)

    def _receive(self) -> list[QueueMessage]:
        return list(
            self.queue.receive_messages(
                messages_per_page=self.settings.batch_size,
                max_messages=self.settings.batch_size,
                visibility_timeout=int(self.lease),
            )
        )

    def _body(self, message: QueueMessage) -> bytes:
        content = message.content
        raw = content.encode() if isinstance(content, str) else bytes(content)
        if self.settings.message_encoding == "base64":
            return base64.b64decode(raw, validate=True)
        return raw

    async def _process(self, message: QueueMessage) -> None:
        receipt = {"value": message.pop_receipt}
        if (message.dequeue_count or 0) > self.settings.max_dequeue_count:
            await self._poison(message, receipt)  # its processes kept dying
            return
        renewer = asyncio.create_task(self._renew(message, receipt))
        started = time.perf_counter()
        outcome = "ok"
        try:
            body = self._body(message)
            fault = find_fault(self.faults, self.name, body, message.dequeue_count or 0)
            if fault is not None and fault.action == "exit-before":
                os._exit(137)
            if fault is not None and fault.action == "fail":
                raise RuntimeError("injected fault (DEVHOST_FAULTS)")
            if fault is not None and fault.action == "hang":
                await asyncio.Event().wait()
            await self.handler(
                QueueMessageBinding(
                    id=message.id,
                    body=body,
                    dequeue_count=message.dequeue_count,
                    expiration_time=message.expires_on,
                    insertion_time=message.inserted_on,
                    time_next_visible=message.next_visible_on,
                    pop_receipt=receipt["value"],
                )
            )
            if fault is not None and fault.action == "exit-after":
                os._exit(137)
        except Exception as exc:
            outcome = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            renewer.cancel()
            await self._failed(message, receipt)
        else:
            renewer.cancel()
            await self._settle(lambda: self.queue.delete_message(message.id, receipt["value"]))
        finally:
            renewer.cancel()
            log.info(
                json.dumps(
                    {
                        "function": self.name,
                        "queue": self.queue_name,
                        "message": message.id,
                        "dequeueCount": message.dequeue_count,
                        **_ids(message),
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                        "outcome": outcome,
                    }
                )
            )

    async def _renew(self, message: QueueMessage, receipt: dict[str, Any]) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                updated = await asyncio.to_thread(
                    self.queue.update_message,
                    message.id,
                    receipt["value"],
                    visibility_timeout=int(self.lease),
                )
                receipt["value"] = updated.pop_receipt
            except AzureError:
                return

    async def _poison(self, message: QueueMessage, receipt: dict[str, Any]) -> None:
        log.warning(
            "%s: message %s dequeued %s times; moving it to %s-poison",
            self.queue_name,
            message.id,
            message.dequeue_count,
            self.queue_name,
        )
        await self._settle(lambda: self.poison.send_message(message.content))
        if self.doorbell is not None:
            self.doorbell.ring(self.poison.queue_name)
        await self._settle(lambda: self.queue.delete_message(message.id, receipt["value"]))

    async def _failed(self, message: QueueMessage, receipt: dict[str, Any]) -> None:
        if (message.dequeue_count or 0) >= self.settings.max_dequeue_count:
            await self._poison(message, receipt)
            return
        await self._settle(
            lambda: self.queue.update_message(
                message.id,
                receipt["value"],
                visibility_timeout=int(self.settings.visibility_timeout),
            )
        )

    @staticmethod
    async def _settle(call: Callable[[], Any]) -> None:
        try:
            await asyncio.to_thread(call)
        except ResourceNotFoundError:
            pass  # the lease was lost: the message will come back by itself
        except AzureError as exc:
            log.warning("queue bookkeeping failed: %s", exc)


def _ids(message: QueueMessage) -> dict[str, Any]:
    """Job id and operation index from a pixelpipe message, for the log line."""
    try:
        content = message.content
        raw = content.encode() if isinstance(content, str) else bytes(content)
        data = json.loads(base64.b64decode(raw))
    except (ValueError, TypeError):
        return {}
    return {k: data[k] for k in ("jobId", "index", "name") if isinstance(data, dict) and k in data}
