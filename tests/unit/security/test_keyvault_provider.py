"""KeyVaultSecretProvider over real HTTPS against the loopback fake.

A protocol test, not Key Vault: it shows that the real SDK client, as we configure it, does the
challenge, reads, writes, lists and disables the way the REST API is documented, and that our
cache, retry bounds and error mapping hold. See tests/support/keyvault_fake.py.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable

import pytest

from shared.errors import ServiceError, Unavailable
from shared.security.secrets import (
    KeyVaultSecretProvider,
    SecretAccessDenied,
    SecretDisabled,
    SecretNotFound,
    SecretRef,
)
from tests.support.keyvault_fake import (
    VAULT_SCOPE,
    FakeKeyVault,
    FakeTokenCredential,
    iter_pages,
)
from tests.unit.security.conftest import ManualClock

MakeProvider = Callable[..., KeyVaultSecretProvider]


def served(vault: FakeKeyVault, method: str | None = None) -> list[tuple[str, str, int]]:
    """(method, path, status) of the requests that carried a token."""
    return [
        (r.method, r.path, r.status)
        for r in vault.requests
        if r.authorization and (method is None or r.method == method)
    ]


# -- the challenge ------------------------------------------------------------------------------
def test_first_request_is_challenged_then_sent_with_a_token_for_the_vault_scope(
    vault: FakeKeyVault, credential: FakeTokenCredential, provider: KeyVaultSecretProvider
):
    provider.set("blob-kek", "one")
    provider.clear_cache()
    provider.get("blob-kek", None)

    first, second, third = vault.requests
    # 1. the SDK sends the PUT without token and without body, to elicit the challenge
    assert (first.method, first.status, first.authorization, first.body) == ("PUT", 401, None, b"")
    # 2. then the original request, body and all, with the token the credential returned
    assert (second.method, second.status) == ("PUT", 200)
    assert second.authorization == f"Bearer {vault.token}"
    assert second.json() == {"value": "one"}
    # 3. later requests reuse the cached challenge and token: no second 401
    assert (third.method, third.path, third.status) == ("GET", "/secrets/blob-kek/", 200)
    assert credential.scopes == [VAULT_SCOPE]
    assert credential.calls[0][1]["tenant_id"] == vault.tenant_id
    assert {r.api_version for r in vault.requests} == {provider._client.api_version}


def test_a_token_the_vault_refuses_is_access_denied(
    vault: FakeKeyVault, make_provider: MakeProvider
):
    provider = make_provider(credential=FakeTokenCredential("stolen-or-stale"))
    with pytest.raises(SecretAccessDenied) as err:
        provider.get("blob-kek")
    assert err.value.code == "SECRET_ACCESS_DENIED" and not err.value.retryable
    # the challenge, then once with the token; a second 401 is final (no loop)
    assert [(r.status, r.authorization) for r in vault.requests] == [
        (401, None),
        (401, "Bearer stolen-or-stale"),
    ]


def test_with_resource_verification_on_the_sdk_refuses_a_foreign_challenge(
    vault: FakeKeyVault, credential: FakeTokenCredential, make_provider: MakeProvider
):
    # The challenge names vault.azure.net, the server is 127.0.0.1: exactly the check that keeps
    # a token for Key Vault from being sent to a host pretending to be one.
    provider = make_provider(verify_challenge_resource=True)
    with pytest.raises(SecretAccessDenied):
        provider.get("blob-kek")
    assert credential.calls == []
    assert [(r.status, r.authorization) for r in vault.requests] == [(401, None)]


# -- reads and writes ---------------------------------------------------------------------------
def test_get_latest_and_exact_versions(vault: FakeKeyVault, provider: KeyVaultSecretProvider):
    one = provider.set("blob-kek", "first-value")
    two = provider.set("blob-kek", "second-value")
    assert one.version != two.version
    assert one.id == f"{vault.url}/secrets/blob-kek/{one.version}"
    assert one.enabled and one.created_on is not None and one.created_on.tzinfo is not None

    provider.clear_cache()
    latest = provider.get("blob-kek")
    assert (latest.value, latest.version, latest.id) == ("second-value", two.version, two.id)
    assert provider.get("blob-kek", one.version).value == "first-value"
    assert provider.get_by_id(one.id).value == "first-value"
    assert "first-value" not in repr(one) and "second-value" not in repr(latest)


def test_set_creates_versions_listed_newest_first_without_values(
    vault: FakeKeyVault, provider: KeyVaultSecretProvider
):
    vault.clock = itertools.count(1_700_000_000).__next__  # distinct `created` seconds
    made = [provider.set("blob-kek", f"value-{i}") for i in range(3)]
    assert vault.version_ids("blob-kek") == [s.version for s in made]

    listed = provider.versions("blob-kek")
    assert [s.version for s in listed] == [s.version for s in reversed(made)]
    assert all(s.value == "" and s.enabled for s in listed)
    assert [s.id for s in listed] == [s.id for s in reversed(made)]


def test_versions_follow_next_links(vault: FakeKeyVault, provider: KeyVaultSecretProvider):
    vault.page_size = 2
    for i in range(5):
        vault.seed("blob-kek", f"v{i}")
    assert len(provider.versions("blob-kek")) == 5
    assert len(list(iter_pages(vault))) == 3
    assert provider.versions("never-set") == []


def test_disable_a_version(vault: FakeKeyVault, provider: KeyVaultSecretProvider):
    one = provider.set("blob-kek", "one")
    two = provider.set("blob-kek", "two")
    provider.get("blob-kek", one.version)  # cached now

    provider.disable("blob-kek", one.version)
    patch = next(r for r in vault.requests if r.method == "PATCH")
    assert patch.path == f"/secrets/blob-kek/{one.version}"
    assert patch.json() == {"attributes": {"enabled": False}}
    with pytest.raises(SecretDisabled) as err:
        provider.get("blob-kek", one.version)  # the cache entry went with the disable
    assert err.value.code == "SECRET_DISABLED"
    assert provider.get("blob-kek").version == two.version
    enabled = {s.version: s.enabled for s in provider.versions("blob-kek")}
    assert enabled == {one.version: False, two.version: True}

    # Like Key Vault: a disabled newest version is not skipped in favour of an older one.
    provider.disable("blob-kek", two.version)
    with pytest.raises(SecretDisabled):
        provider.get("blob-kek")


def test_missing_secrets_and_versions_are_secret_not_found(
    vault: FakeKeyVault, provider: KeyVaultSecretProvider
):
    with pytest.raises(SecretNotFound) as err:
        provider.get("never-set")
    assert err.value.code == "SECRET_NOT_FOUND" and isinstance(err.value, ServiceError)
    assert not err.value.retryable
    provider.set("blob-kek", "one")
    with pytest.raises(SecretNotFound):
        provider.get("blob-kek", "0" * 32)
    with pytest.raises(SecretNotFound):
        provider.disable("blob-kek", "0" * 32)
    vault.fail_next(1, 404)
    provider.clear_cache()
    with pytest.raises(SecretNotFound):
        provider.get("blob-kek")


def test_forbidden_is_access_denied_and_not_retried(
    vault: FakeKeyVault, provider: KeyVaultSecretProvider
):
    provider.set("blob-kek", "one")
    provider.clear_cache()
    vault.clear_requests()
    vault.fail_next(1, 403)
    with pytest.raises(SecretAccessDenied):
        provider.get("blob-kek")
    assert served(vault) == [("GET", "/secrets/blob-kek/", 403)]


# -- ids ----------------------------------------------------------------------------------------
def test_ids_parse_only_for_this_vault(vault: FakeKeyVault, provider: KeyVaultSecretProvider):
    one = provider.set("blob-kek", "one")
    assert provider.parse_id(one.id) == SecretRef("blob-kek", one.version)
    upper = one.id.replace("https://127.0.0.1", "HTTPS://127.0.0.1")
    assert provider.parse_id(upper) == SecretRef("blob-kek", one.version)
    vault.clear_requests()
    for bad in [
        f"https://evil.example/secrets/blob-kek/{one.version}",
        one.id.replace(vault.url, "https://127.0.0.1:1"),
        f"{vault.url}/secrets/blob-kek",  # not versioned
        f"{vault.url}/keys/blob-kek/{one.version}",
        f"{vault.url}/secrets/blob-kek/{one.version}?x=1",
        f"{vault.url}/secrets/../blob-kek/{one.version}",
        f"local://secrets/blob-kek/{one.version}",
        "not a url",
    ]:
        with pytest.raises(SecretNotFound):
            provider.get_by_id(bad)
    assert vault.requests == []  # nothing was fetched for a foreign id


def test_bad_names_never_reach_the_vault(vault: FakeKeyVault, provider: KeyVaultSecretProvider):
    for name in ["", "a/b", "a b", "x" * 128, "../secrets"]:
        with pytest.raises(ValueError):
            provider.get(name)
    with pytest.raises(ValueError):
        provider.get("blob-kek", "../../x")
    assert vault.requests == []


def test_vault_url_must_be_https():
    for url in ["http://x.vault.azure.net", "https://", "https://x.vault.azure.net/secrets"]:
        with pytest.raises(ValueError):
            KeyVaultSecretProvider(url, FakeTokenCredential())


# -- retries ------------------------------------------------------------------------------------
def test_throttling_then_success_is_retried(vault: FakeKeyVault, provider: KeyVaultSecretProvider):
    provider.set("blob-kek", "one")
    provider.clear_cache()
    vault.clear_requests()
    vault.fail_next(2, 429)
    assert provider.get("blob-kek").value == "one"
    assert [s for _, _, s in served(vault)] == [429, 429, 200]


def test_a_failed_503_is_retried(vault: FakeKeyVault, provider: KeyVaultSecretProvider):
    vault.fail_next(1, 503)
    assert provider.set("blob-kek", "one").value == "one"
    assert [s for _, _, s in served(vault, "PUT")] == [503, 200]


@pytest.mark.parametrize("status", [429, 503, 500])
def test_persisting_failure_is_unavailable_after_bounded_retries(
    vault: FakeKeyVault, make_provider: MakeProvider, status: int
):
    provider = make_provider(retries=2)
    vault.seed("blob-kek", "one")
    vault.fail_next(50, status, retry_after="7")
    started = time.monotonic()
    with pytest.raises(Unavailable) as err:
        provider.get("blob-kek")
    elapsed = time.monotonic() - started
    assert err.value.retryable and err.value.status == 503 and err.value.code == "UNAVAILABLE"
    assert err.value.retry_after == 7  # the vault's Retry-After, passed on to the queue
    assert [s for _, _, s in served(vault)] == [status] * 3  # one try + two retries
    assert elapsed < 2  # Retry-After: 7 was capped by retry_after_max
    assert vault.pending_faults == 47


def test_unreachable_vault_is_unavailable(make_provider: MakeProvider):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = make_provider(vault_url=f"https://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(Unavailable):
        provider.get("blob-kek")
    assert time.monotonic() - started < 2


# -- the cache ----------------------------------------------------------------------------------
def test_cache_hits_do_not_reach_the_vault_until_the_ttl_expires(
    vault: FakeKeyVault, make_provider: MakeProvider, clock: ManualClock
):
    one_id = vault.seed("blob-kek", "one")
    one = one_id.rsplit("/", 1)[1]
    provider = make_provider(cache_ttl=300, clock=clock)
    for _ in range(3):
        assert provider.get("blob-kek").value == "one"
        assert provider.get("blob-kek", one).value == "one"
    assert [p for _, p, _ in served(vault, "GET")] == ["/secrets/blob-kek/"]  # also fills one's

    vault.seed("blob-kek", "two")  # rotated by another instance
    clock.advance(299)
    assert provider.get("blob-kek").value == "one"
    clock.advance(2)
    assert provider.get("blob-kek").value == "two"
    assert provider.get("blob-kek", one).value == "one"
    assert len(served(vault, "GET")) == 3


def test_set_refreshes_the_latest_entry(vault: FakeKeyVault, provider: KeyVaultSecretProvider):
    provider.set("blob-kek", "one")
    assert provider.get("blob-kek").value == "one"
    provider.set("blob-kek", "two")
    assert provider.get("blob-kek").value == "two"
    assert served(vault, "GET") == []


def test_zero_ttl_disables_the_cache(vault: FakeKeyVault, make_provider: MakeProvider):
    vault.seed("blob-kek", "one")
    provider = make_provider(cache_ttl=0)
    provider.get("blob-kek")
    provider.get("blob-kek")
    assert len(served(vault, "GET")) == 2
