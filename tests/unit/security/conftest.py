"""Fixtures: a fresh loopback fake Key Vault per test (a protocol test, not Key Vault)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.keyvault.secrets._shared import http_challenge_cache

from shared.security.secrets import KeyVaultSecretProvider
from tests.support.keyvault_fake import FakeKeyVault, FakeTokenCredential


class ManualClock:
    """A clock tests move by hand (for cache TTLs)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def vault() -> Iterator[FakeKeyVault]:
    with FakeKeyVault() as fake:
        # The SDK caches challenges per host:port for the whole process; a port reused from an
        # earlier test must not skip this test's challenge.
        http_challenge_cache.remove_challenge_for_url(fake.url)
        yield fake


@pytest.fixture
def credential(vault: FakeKeyVault) -> FakeTokenCredential:
    return FakeTokenCredential(vault.token)


@pytest.fixture
def make_provider(
    vault: FakeKeyVault, credential: FakeTokenCredential
) -> Iterator[Callable[..., KeyVaultSecretProvider]]:
    made: list[KeyVaultSecretProvider] = []

    def make(**overrides: Any) -> KeyVaultSecretProvider:
        options: dict[str, Any] = {
            "retries": 2,
            "retry_backoff": 0.0,
            "retry_after_max": 0.05,
            "timeout": 5.0,
            "connection_verify": vault.ca_path,
            "verify_challenge_resource": False,  # the fake is 127.0.0.1, not *.vault.azure.net
        }
        options.update(overrides)
        provider = KeyVaultSecretProvider(
            options.pop("vault_url", vault.url), options.pop("credential", credential), **options
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(
    make_provider: Callable[..., KeyVaultSecretProvider], clock: ManualClock
) -> KeyVaultSecretProvider:
    return make_provider(clock=clock)
