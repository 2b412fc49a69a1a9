"""Wake-ups: a listener sleeping between polls hears at once that its queue got a message.

Queue triggers poll, and an idle listener backs off to host.json's `maxPollingInterval`
(Durable's `maxQueuePollingInterval` for its queues), so every hop of a job through an
idle host waits for half that interval on average. The Functions host cuts this short for
messages it writes itself: its `SharedQueueWatcher` tells the listener of a queue the
moment an output binding of the same host adds a message there, and the Durable extension
does the same for the orchestration and activity messages it sends. devhost does likewise,
across its processes (they are one host scaled out on one machine):

- `Doorbell`: every process of the host binds a loopback UDP socket and registers its port
  in a folder the processes share (`DEVHOST_BELLS`); `ring(queue)` sends the queue's name to
  every registered port, and a process that listens to that queue wakes the listener's
  sleep (`nap`). A datagram is a hint, never the message: a lost one costs one polling
  interval, nothing else, and a listener still polls on its own schedule.
- `QueueProxy`: the app writes its queue messages with the Storage SDK (its messages must be
  written before the function returns, so no output binding), which the host cannot see.
  So under devhost the app's queue endpoint is a pass-through proxy to Azurite's queue
  service that rings the queue's bell after each message it creates (a 201 to
  `POST /<account>/<queue>/messages`). Requests and answers pass unchanged (the SharedKey
  signature does not cover the host name); devhost's own clients talk to Azurite directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path

import aiohttp
from aiohttp import web

__all__ = ["BELLS_ENV", "Doorbell", "QueueProxy", "idle_wait"]

log = logging.getLogger("devhost.wakeup")

BELLS_ENV = "DEVHOST_BELLS"
PEERS_TTL = 0.5  # seconds a read of the registry is reused
_MAX_NAME = 255
# Hop-by-hop headers (RFC 9110 7.6.1), and the ones the proxy's own client sets.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


_AUTO_HEADERS = ("Content-Type", "Accept", "Accept-Encoding", "User-Agent")


class Doorbell:
    """Queue wake-ups between the processes of one host (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sock: socket.socket | None = None
        self._sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._bells: dict[str, asyncio.Event] = {}
        self._peers: list[int] = []
        self._peers_read = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rung = 0  # datagrams sent (tests, logs)

    @classmethod
    def from_env(cls) -> Doorbell | None:
        folder = os.environ.get(BELLS_ENV)
        return cls(Path(folder)) if folder else None

    @property
    def port(self) -> int:
        assert self._sock is not None, "open() first"
        return int(self._sock.getsockname()[1])

    def open(self) -> Doorbell:
        """Listen (on the running event loop) and register this process."""
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._readable)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / str(self.port)).touch()
        return self

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                (self.folder / str(self.port)).unlink()
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self._sender.close()

    def bell(self, queue: str) -> asyncio.Event:
        """The event `ring(queue)` sets in this process (created on first use)."""
        return self._bells.setdefault(queue, asyncio.Event())

    def ring(self, queue: str) -> None:
        """Tell every process of the host that `queue` has a new message (any thread)."""
        payload = queue.encode()[:_MAX_NAME]
        for port in self._registered():
            try:
                self._sender.sendto(payload, ("127.0.0.1", port))
                self.rung += 1
            except OSError:
                pass  # a process that just stopped: its file goes with it

    async def nap(self, queue: str, stop: asyncio.Event, timeout: float) -> bool:
        """Sleep until `queue` rings, `stop` is set or `timeout` passes; whether it rang.
        A ring that came while the listener was busy ends the next nap at once."""
        bell = self.bell(queue)
        if not bell.is_set():
            waiters = [asyncio.ensure_future(bell.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        rang = bell.is_set()
        bell.clear()
        return rang

    def _registered(self) -> list[int]:
        now = time.monotonic()
        if now - self._peers_read > PEERS_TTL:
            try:
                self._peers = [int(p.name) for p in self.folder.iterdir() if p.name.isdigit()]
            except OSError:
                self._peers = []
            self._peers_read = now
        return self._peers

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(_MAX_NAME)
            except OSError:  # BlockingIOError: nothing more to read
                return
            bell = self._bells.get(data.decode(errors="replace"))
            if bell is not None:
                bell.set()


async def idle_wait(
    doorbell: Doorbell | None, queue: str | None, stop: asyncio.Event, timeout: float
) -> bool:
    """A listener's sleep between two empty polls: until `stop`, `timeout`, or (with a
    doorbell) a message sent to `queue`; whether it was the last."""
    if doorbell is not None and queue is not None:
        return await doorbell.nap(queue, stop, timeout)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=timeout)
    return False


class QueueProxy:
    """Azurite's queue service, passed through, ringing the bell of every queue that gets a
    message (see the module docstring)."""

    def __init__(self, target: str, doorbell: Doorbell) -> None:
        self.target = target.rstrip("/")  # http://127.0.0.1:<queue port>
        self.doorbell = doorbell
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, port: int) -> QueueProxy:
        app = web.Application(client_max_size=1 << 20)  # a queue message is at most 64 KiB
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=60)
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        try:
            async with self._session.request(
                request.method,
                f"{self.target}{request.path_qs}",
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
                # Only what the client sent: a Content-Type the client did not sign would
                # break the SharedKey signature.
                skip_auto_headers=_AUTO_HEADERS,
            ) as answer:
                payload = await answer.read()
                status = answer.status
                out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Storage is down (restarting, say): a 503 is what the SDK retries.
            log.warning("queue proxy: %s %s: %s", request.method, request.path, exc)
            return web.Response(status=503, text="The storage emulator is not reachable.")
        queue = _created_in(request.method, request.path, status)
        if queue is not None:
            self.doorbell.ring(queue)
        return web.Response(status=status, headers=out_headers, body=payload)


def _created_in(method: str, path: str, status: int) -> str | None:
    """The queue a request added a message to (`POST /<account>/<queue>/messages` -> 201)."""
    parts = path.strip("/").split("/")
    if method == "POST" and status == 201 and len(parts) == 3 and parts[2] == "messages":
        return parts[1]
    return None
