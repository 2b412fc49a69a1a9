"""Fixtures shared by every test: a real Azurite, a real token issuer, a runtime on them.

Azurite runs in memory on free loopback ports for the whole session; `rt` empties every
container, queue and table before each test that uses it, so tests can take inventories.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devhost.azurite import Azurite
from devhost.issuer import TokenIssuer
from shared.config import Settings
from shared.runtime import Runtime, use_runtime
from shared.storage.clients import CONTAINERS, QUEUES, TABLES
from tests.devhost.support import LoopThread
from tests.support.loopback import LoopbackServer

os.environ.setdefault("PILLOW_BLOCKS_MAX", "32")


@pytest.fixture(scope="session")
def api_loop() -> Iterator[LoopThread]:
    """One event loop thread for every test that uses the durable SDK's client: the SDK keeps
    one aiohttp session per process, bound to the loop that first used it."""
    loop = LoopThread()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite.on_free_ports().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def issuer() -> Iterator[TokenIssuer]:
    """A token issuer whose JWKS is served over loopback HTTP, like Entra ID's."""
    holder: dict[str, TokenIssuer] = {}
    with LoopbackServer(lambda req: LoopbackServer.json_reply(holder["issuer"].jwks())) as jwks:
        made = TokenIssuer(f"{jwks.url}/issuer/v2.0", jwks_url=f"{jwks.url}/keys")
        holder["issuer"] = made
        yield made


def make_settings(azurite: Azurite, issuer: TokenIssuer, **overrides: object) -> Settings:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "PIXELPIPE_AUTH_JWKS_URL": issuer.jwks_url,
        "PIXELPIPE_AUTH_ISSUERS": issuer.issuer,
        "PIXELPIPE_AUTH_AUDIENCES": issuer.audience,
        "PIXELPIPE_AUTH_TENANTS": issuer.tenant,
        "PIXELPIPE_WEBHOOK_ALLOW_PRIVATE": "true",
        "PIXELPIPE_SECRET_WEBHOOK_SIGNING_KEY": "test-webhook-secret",
        "PIXELPIPE_IMAGING_THREADS": "2",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return Settings.from_env(env)


def empty_storage(rt: Runtime) -> None:
    for name in CONTAINERS:
        container = rt.clients.container(name)
        for blob in container.list_blobs():
            container.delete_blob(blob.name, delete_snapshots="include")
    for name in QUEUES:
        rt.clients.queue(name).clear_messages()
    for name in TABLES:
        table = rt.clients.table(name)
        for entity in table.list_entities(select=["PartitionKey", "RowKey"]):
            table.delete_entity(entity["PartitionKey"], entity["RowKey"])


@pytest.fixture(scope="session")
def _shared_runtime(azurite: Azurite, issuer: TokenIssuer) -> Runtime:
    from shared.security.secrets import LocalSecretProvider

    secrets = LocalSecretProvider({"PIXELPIPE_SECRET_WEBHOOK_SIGNING_KEY": "test-webhook-secret"})
    return Runtime.create(make_settings(azurite, issuer), secrets=secrets).prepare()


@pytest.fixture
def rt(_shared_runtime: Runtime) -> Iterator[Runtime]:
    """The runtime over Azurite, installed as the process runtime, on empty storage."""
    empty_storage(_shared_runtime)
    use_runtime(_shared_runtime)
    try:
        yield _shared_runtime
    finally:
        use_runtime(None)
