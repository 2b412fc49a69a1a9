"""Wake-ups between the host's processes (`devhost.wakeup`): real UDP on loopback, and the
queue proxy in front of the session's real Azurite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient

from devhost.azurite import ACCOUNT, Azurite, free_ports
from devhost.wakeup import Doorbell, QueueProxy, idle_wait


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


def test_a_ring_wakes_the_listeners_of_that_queue_in_every_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        sender, receiver = Doorbell(tmp_path).open(), Doorbell(tmp_path).open()
        stop = asyncio.Event()
        try:
            started = time.monotonic()
            nap = asyncio.ensure_future(receiver.nap("ops", stop, timeout=10))
            other = asyncio.ensure_future(receiver.nap("jobs", stop, timeout=0.3))
            await asyncio.sleep(0.05)
            sender.ring("ops")
            assert await nap is True
            assert time.monotonic() - started < 5  # woken, not timed out
            assert await other is False  # another queue's listener slept on
            assert sender.rung == 2  # both registered processes were told
        finally:
            sender.close()
            receiver.close()

    run(scenario)


def test_a_ring_while_the_listener_is_busy_ends_its_next_nap_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        bell = Doorbell(tmp_path).open()
        stop = asyncio.Event()
        try:
            bell.bell("ops")
            bell.ring("ops")  # the listener is receiving, not napping
            await asyncio.sleep(0.05)
            started = time.monotonic()
            assert await bell.nap("ops", stop, timeout=10) is True
            assert time.monotonic() - started < 1
            # ...and only once: the next nap sleeps its time out.
            assert await bell.nap("ops", stop, timeout=0.1) is False
        finally:
            bell.close()

    run(scenario)


def test_a_stopped_process_is_forgotten_and_stop_ends_a_nap(tmp_path: Path) -> None:
    async def scenario() -> None:
        gone = Doorbell(tmp_path).open()
        port = gone.port
        gone.close()
        assert not (tmp_path / str(port)).exists()
        bell = Doorbell(tmp_path).open()
        stop = asyncio.Event()
        try:
            bell.ring("ops")  # no error for the process that went away
            stop.set()
            assert await bell.nap("jobs", stop, timeout=10) is False
        finally:
            bell.close()

    run(scenario)


def _through(azurite: Azurite, port: int) -> str:
    return azurite.connection_string.replace(
        azurite.endpoint(azurite.queue_port), f"http://127.0.0.1:{port}/{ACCOUNT}"
    )


def test_the_queue_proxy_passes_requests_through_and_rings_for_new_messages(
    azurite: Azurite, tmp_path: Path
) -> None:
    async def scenario() -> None:
        bell = Doorbell(tmp_path).open()
        port = free_ports(1)[0]
        proxy = await QueueProxy(f"http://127.0.0.1:{azurite.queue_port}", bell).start(port)
        name = "wakeup-proxy"
        ops = bell.bell(name)
        direct = QueueClient.from_connection_string(azurite.connection_string, name)
        proxied = QueueClient.from_connection_string(_through(azurite, port), name)
        try:
            await asyncio.to_thread(proxied.create_queue)  # signed requests survive the hop
            assert not ops.is_set()
            await asyncio.to_thread(proxied.send_message, "hello")
            await asyncio.wait_for(ops.wait(), timeout=5)
            # The message is in Azurite, and reads with query strings pass too.
            messages = await asyncio.to_thread(
                lambda: list(direct.receive_messages(visibility_timeout=5))
            )
            assert [m.content for m in messages] == ["hello"]
            peeked = await asyncio.to_thread(proxied.peek_messages)
            assert peeked == []  # invisible while received
            # A failed write passes its status through and rings nothing.
            ops.clear()
            missing = QueueClient.from_connection_string(_through(azurite, port), "no-such-q")
            with pytest.raises(ResourceNotFoundError):
                await asyncio.to_thread(missing.send_message, "lost")
            await asyncio.sleep(0.1)
            assert not bell.bell("no-such-q").is_set()
        finally:
            await asyncio.to_thread(direct.delete_queue)
            await proxy.stop()
            bell.close()

    run(scenario)


def test_the_queue_proxy_answers_503_while_storage_is_down(tmp_path: Path) -> None:
    async def scenario() -> None:
        bell = Doorbell(tmp_path).open()
        closed, port = free_ports(2)
        proxy = await QueueProxy(f"http://127.0.0.1:{closed}", bell).start(port)
        try:
            down = Azurite(closed, closed, closed)
            service = QueueServiceClient.from_connection_string(_through(down, port), retry_total=0)
            with pytest.raises(HttpResponseError) as failure:
                await asyncio.to_thread(service.get_queue_client("jobs").send_message, "x")
            assert failure.value.status_code == 503  # what the SDK retries
        finally:
            await proxy.stop()
            bell.close()

    run(scenario)


def test_without_a_doorbell_a_listener_sleeps_its_interval_or_until_stopped() -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        started = time.monotonic()
        assert await idle_wait(None, "ops", stop, 0.2) is False
        assert 0.15 < time.monotonic() - started < 5
        stop.set()
        started = time.monotonic()
        assert await idle_wait(None, "ops", stop, 10) is False
        assert time.monotonic() - started < 1

    run(scenario)
