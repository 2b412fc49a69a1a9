"""Fixtures for the Durable backend tests: a task hub per test on the session's Azurite, the
Durable HTTP API on loopback, the SDK's client of it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devhost.azurite import Azurite
from devhost.durable.registry import app_functions_of
from devhost.durable.storage import AzuriteDurableHost
from tests.devhost.durable_app import app
from tests.devhost.support import DurableApi, LoopThread

HostFactory = Callable[..., AzuriteDurableHost]


@pytest.fixture
def hub() -> str:
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture
def make_host(azurite: Azurite, hub: str) -> HostFactory:
    """Hosts on this test's hub (the test app's functions unless told otherwise); short
    leases so that recovery tests stay quick."""

    def make(**kwargs: Any) -> AzuriteDurableHost:
        kwargs.setdefault("lease_seconds", 5)
        kwargs.setdefault("activity_lease_seconds", 5)
        if "orchestrators" not in kwargs and "activities" not in kwargs:
            kwargs.setdefault("functions", app_functions_of(app))
        functions = kwargs.pop("functions", None)
        return AzuriteDurableHost(azurite.connection_string, functions, hub=hub, **kwargs)

    return make


@pytest.fixture
def host(make_host: HostFactory) -> AzuriteDurableHost:
    return make_host()


@pytest.fixture
def api(api_loop: LoopThread, host: AzuriteDurableHost) -> Iterator[DurableApi]:
    server = DurableApi(api_loop, host).start()
    try:
        yield server
    finally:
        server.stop()
