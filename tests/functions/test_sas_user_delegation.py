"""The Azure path for links: a token credential, no account key, user-delegation SAS.

Azurite verifies bearer tokens only over HTTPS with `--oauth basic`: it checks the token's
audience, issuer and lifetime, not its signature. This starts such an Azurite with a
throwaway certificate and drives `StorageClients`/`SasIssuer` exactly as they run in Azure
(identity-based settings, `AzureWebJobsStorage__*`), then uses the links over HTTPS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from azure.core.credentials import AccessToken

from devhost.azurite import ACCOUNT, Azurite
from shared.config import Settings
from shared.storage.clients import RESULTS, StorageClients
from shared.storage.sas import SasIssuer
from tests.support.tls import make_certificates

pytestmark = pytest.mark.azurite


class StorageToken:
    """A TokenCredential handing out what Entra ID would issue for Azure Storage."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
            "oid": "23657296-5cd5-45b0-a809-d972a7f4dfe1",
            "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        return AccessToken(jwt.encode(claims, "unused-signature-key" * 2, "HS256"), now + 3600)


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory) -> Iterator[tuple[Azurite, str]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key, ca = make_certificates(folder, "HTTPS Azurite")
    server = Azurite.on_free_ports(cert=cert, key=key, oauth=True).start()
    try:
        yield server, ca
    finally:
        server.stop()


@pytest.fixture
def clients(oauth_azurite, monkeypatch) -> StorageClients:
    server, ca = oauth_azurite
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)  # trust the throwaway CA, like a real one
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage__accountName": ACCOUNT,
            "AzureWebJobsStorage__blobServiceUri": server.endpoint(server.blob_port),
            "AzureWebJobsStorage__queueServiceUri": server.endpoint(server.queue_port),
            "AzureWebJobsStorage__tableServiceUri": server.endpoint(server.table_port),
            "PIXELPIPE_SAS_TTL_SECONDS": "600",
        }
    )
    credential = StorageToken()
    clients = StorageClients(settings, credential)
    assert clients.endpoints.key is None and clients.token_credential is credential
    clients.ensure_resources()
    return clients


def test_identity_based_clients_work_without_any_key(clients):
    clients.container(RESULTS).upload_blob("probe.txt", b"hello", overwrite=True)
    assert clients.container(RESULTS).download_blob("probe.txt").readall() == b"hello"
    assert "https://storage.azure.com/.default" in clients.token_credential.scopes


def test_user_delegation_sas_is_read_only_single_blob_and_short_lived(clients, oauth_azurite):
    _, ca = oauth_azurite
    clients.container(RESULTS).upload_blob("job/out.png", b"\x89PNG-bytes", overwrite=True)
    clients.container(RESULTS).upload_blob("job/other.png", b"other", overwrite=True)
    issuer = SasIssuer(clients)
    now = datetime.now(UTC)
    link = issuer.read_url(
        RESULTS, "job/out.png", filename="ré sumé.png", content_type="image/png", now=now
    )
    query = parse_qs(urlsplit(link.url).query)
    assert query["sp"] == ["r"] and query["sr"] == ["b"]
    assert "skoid" in query and "sktid" in query  # signed by a user-delegation key
    assert query["spr"] == ["https"]
    start = datetime.fromisoformat(query["st"][0].replace("Z", "+00:00"))
    assert now - start >= timedelta(seconds=299)  # backdated for clock skew
    assert link.expires_at - now <= timedelta(seconds=601)

    got = requests.get(link.url, timeout=10, verify=ca)
    assert got.status_code == 200 and got.content == b"\x89PNG-bytes"
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"] == (
        "attachment; filename=\"re_sume.png\"; filename*=UTF-8''r%C3%A9%20sum%C3%A9.png"
    )
    assert (
        requests.put(
            link.url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10, verify=ca
        ).status_code
        == 403
    )
    other = link.url.replace("/job/out.png?", "/job/other.png?")
    assert requests.get(other, timeout=10, verify=ca).status_code == 403

    expired = issuer.read_url(
        RESULTS,
        "job/out.png",
        filename="x.png",
        content_type="image/png",
        now=now - timedelta(hours=2),
    )
    assert requests.get(expired.url, timeout=10, verify=ca).status_code == 403


def test_delegation_key_is_fetched_once_and_reused(clients, monkeypatch):
    issuer = SasIssuer(clients)
    calls = []
    original = clients.blob_service.get_user_delegation_key

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(clients.blob_service, "get_user_delegation_key", counting)
    for _ in range(3):
        issuer.read_url(RESULTS, "a.png", filename="a.png", content_type="image/png")
    assert len(calls) == 1


def test_upload_url_allows_create_and_write_only(clients, oauth_azurite):
    _, ca = oauth_azurite
    link = SasIssuer(clients).upload_url("inbox", "uploads/j/cat.jpg")
    assert parse_qs(urlsplit(link.url).query)["sp"] == ["cw"]
    put = requests.put(
        link.url, data=b"jpeg", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10, verify=ca
    )
    assert put.status_code == 201
    assert requests.get(link.url, timeout=10, verify=ca).status_code == 403
