"""Helpers for the Durable backend tests: an event loop in a thread (the aiohttp server and
the SDK's client live there), the Durable HTTP API on a loopback port, background workers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import azure.durable_functions as df
from aiohttp import web
from azure.durable_functions.models.utils import http_utils

from devhost.durable.storage import AzuriteDurableHost
from devhost.durable.webhooks import add_durable_routes, client_binding

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running in a daemon thread; `run` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="api-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        # The SDK keeps one aiohttp session per process, bound to the loop that made it.
        self.run(http_utils._close_session())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class DurableApi:
    """The Durable HTTP API for `host` on 127.0.0.1 (a free port), and an SDK client of it."""

    def __init__(self, loop: LoopThread, host: AzuriteDurableHost) -> None:
        self.loop = loop
        self.host = host
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def start(self) -> DurableApi:
        self.base_url = self.loop.run(self._serve())
        return self

    async def _serve(self) -> str:
        app = web.Application()
        add_durable_routes(app, self.host)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._runner is not None:
            self.loop.run(self._runner.cleanup())
            self._runner = None

    @property
    def binding(self) -> str:
        return client_binding(self.base_url, self.host.hub)

    def client(self) -> df.DurableOrchestrationClient:
        return df.DurableOrchestrationClient(self.binding)

    def __call__(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return self.loop.run(coro, timeout)


@contextmanager
def workers(*hosts: AzuriteDurableHost, threads: int = 1, name: str = "w") -> Iterator[None]:
    """Run `threads` work loops per host in the background for the block."""
    stop = threading.Event()
    running = [
        threading.Thread(
            target=host.run_until,
            args=(stop,),
            kwargs={"idle_seconds": 0.02},
            name=f"{name}{h}-{t}",
            daemon=True,
        )
        for h, host in enumerate(hosts)
        for t in range(threads)
    ]
    for thread in running:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in running:
            thread.join(30)


def wait_until(
    condition: Callable[[], T], *, timeout: float = 15, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def drain(host: AzuriteDurableHost, *, rounds: int = 50) -> None:
    """Step the host's work loop until a round finds nothing to do (deterministic tests)."""
    for _ in range(rounds):
        if not (host.process_orchestrations() + host.process_activities(max_messages=32)):
            return
    raise AssertionError(f"still busy after {rounds} rounds")
