"""LocalSecretProvider (settings + JSON version store) and the provider factory."""

from __future__ import annotations

import datetime as dt
import json
import stat
import threading
from pathlib import Path

import pytest

from shared.config import ConfigError
from shared.security.secrets import (
    KeyVaultSecretProvider,
    LocalSecretProvider,
    SecretDisabled,
    SecretError,
    SecretNotFound,
    SecretRef,
    secret_provider_from_settings,
)
from tests.support.keyvault_fake import FakeTokenCredential

SETTINGS = {"PIXELPIPE_SECRET_BLOB_KEK": "from-settings", "PIXELPIPE_MAX_FRAMES": "100"}


def test_a_settings_value_is_one_stable_version():
    provider = LocalSecretProvider(SETTINGS)
    secret = provider.get("blob-kek")
    assert (secret.value, secret.version) == ("from-settings", "settings")
    assert secret.id == "local://secrets/blob-kek/settings"
    assert secret.enabled and secret.created_on is None
    assert provider.get("BLOB-KEK").value == "from-settings"  # names are case-insensitive
    assert provider.setting_name("blob-kek") == "PIXELPIPE_SECRET_BLOB_KEK"
    assert LocalSecretProvider(SETTINGS).get_by_id(secret.id).value == "from-settings"
    assert "from-settings" not in repr(secret)


def test_missing_is_secret_not_found():
    provider = LocalSecretProvider({"PIXELPIPE_SECRET_EMPTY": ""})
    for name in ["blob-kek", "empty"]:
        with pytest.raises(SecretNotFound) as err:
            provider.get(name)
        assert err.value.code == "SECRET_NOT_FOUND"
    assert provider.versions("blob-kek") == []
    with pytest.raises(SecretNotFound):
        LocalSecretProvider(SETTINGS).get("blob-kek", "0" * 32)


def test_set_writes_versions_to_the_store_and_the_newest_wins(tmp_path: Path):
    store = tmp_path / ".data" / "secrets" / "local-secrets.json"
    clock = iter(dt.datetime(2025, 1, 1, 12, m, tzinfo=dt.UTC) for m in range(10))
    provider = LocalSecretProvider(SETTINGS, store_path=store, now=lambda: next(clock))
    one = provider.set("blob-kek", "one")
    two = provider.set("blob-kek", "two")
    assert len(one.version) == 32 and int(one.version, 16) >= 0 and one.version != two.version
    assert one.id == f"local://secrets/blob-kek/{one.version}"

    again = LocalSecretProvider(SETTINGS, store_path=store)  # another process, or a restart
    assert again.get("blob-kek").value == "two"
    assert again.get("blob-kek", one.version).value == "one"
    assert again.get("blob-kek", "settings").value == "from-settings"
    assert again.get_by_id(one.id).value == "one"
    listed = again.versions("blob-kek")
    assert [s.version for s in listed] == [two.version, one.version, "settings"]
    assert all(s.value == "" for s in listed)

    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    assert json.loads(store.read_text())["secrets"]["blob-kek"]["versions"][0]["value"] == "one"


def test_without_a_store_versions_live_in_memory():
    provider = LocalSecretProvider()
    made = provider.set("blob-kek", "one")
    assert provider.get("blob-kek").version == made.version
    assert LocalSecretProvider().versions("blob-kek") == []


def test_disable_stored_and_settings_versions(tmp_path: Path):
    provider = LocalSecretProvider(SETTINGS, store_path=tmp_path / "s.json")
    one = provider.set("blob-kek", "one")
    two = provider.set("blob-kek", "two")
    provider.disable("blob-kek", one.version)
    with pytest.raises(SecretDisabled) as err:
        provider.get("blob-kek", one.version)
    assert err.value.code == "SECRET_DISABLED"
    assert provider.get("blob-kek").version == two.version

    provider.disable("blob-kek", "settings")
    with pytest.raises(SecretDisabled):
        provider.get("blob-kek", "settings")
    provider.disable("blob-kek", two.version)
    with pytest.raises(SecretDisabled):
        provider.get("blob-kek")  # the newest is disabled: no fallback, as in Key Vault
    assert {s.version: s.enabled for s in provider.versions("blob-kek")} == {
        two.version: False,
        one.version: False,
        "settings": False,
    }
    with pytest.raises(SecretNotFound):
        provider.disable("blob-kek", "0" * 32)
    with pytest.raises(SecretNotFound):
        LocalSecretProvider(store_path=tmp_path / "t.json").disable("blob-kek", "settings")


def test_ids_parse_only_when_local():
    provider = LocalSecretProvider(SETTINGS)
    assert provider.parse_id("local://secrets/blob-kek/abc123") == SecretRef("blob-kek", "abc123")
    for bad in [
        "https://x.vault.azure.net/secrets/blob-kek/abc123",
        "local://secrets/blob-kek",
        "local://keys/blob-kek/abc123",
        "local://secrets/../abc123",
        "local://secrets/blob-kek/abc123?x",
        "local://secrets/blob-kek/abc/def",
    ]:
        with pytest.raises(SecretNotFound):
            provider.get_by_id(bad)


def test_a_damaged_store_is_a_clear_error(tmp_path: Path):
    store = tmp_path / "s.json"
    store.write_text("{not json")
    with pytest.raises(SecretError, match="cannot be read"):
        LocalSecretProvider(store_path=store).get("blob-kek")
    store.write_text("[]")
    with pytest.raises(SecretError, match="format"):
        LocalSecretProvider(store_path=store).set("blob-kek", "x")


def test_concurrent_rotations_keep_every_version(tmp_path: Path):
    store = tmp_path / "s.json"
    providers = [LocalSecretProvider(store_path=store) for _ in range(2)]

    def rotate(p: LocalSecretProvider) -> None:
        for i in range(10):
            p.set("blob-kek", str(i))

    threads = [threading.Thread(target=rotate, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(LocalSecretProvider(store_path=store).versions("blob-kek")) == 20


# -- the factory --------------------------------------------------------------------------------
def test_factory_builds_the_provider_the_settings_name(tmp_path: Path):
    local = secret_provider_from_settings(
        "local", vault_url=None, local_values=SETTINGS, local_store=str(tmp_path / "s.json")
    )
    assert isinstance(local, LocalSecretProvider)
    assert local.get("blob-kek").value == "from-settings"

    remote = secret_provider_from_settings(
        "KeyVault",
        vault_url="https://pixelpipe-kv.vault.azure.net/",
        local_values={},
        local_store=None,
        credential=FakeTokenCredential(),
    )
    assert isinstance(remote, KeyVaultSecretProvider)
    assert remote.vault_url == "https://pixelpipe-kv.vault.azure.net"
    remote.close()


@pytest.mark.parametrize(
    ("kind", "url"),
    [("keyvault", None), ("keyvault", "http://kv.vault.azure.net"), ("vault", None), ("", None)],
)
def test_factory_refuses_bad_settings(kind: str, url: str | None):
    with pytest.raises(ConfigError):
        secret_provider_from_settings(
            kind, vault_url=url, local_values={}, local_store=None, credential=FakeTokenCredential()
        )
