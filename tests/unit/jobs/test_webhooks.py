"""Webhook SSRF defence and signing (issue 5): each refused range, redirects, signatures."""

from __future__ import annotations

import hashlib
import hmac
import socket

import pytest

from shared.errors import InvalidSpec
from shared.jobs.webhooks import check_webhook_url, deliver, sign
from tests.support.loopback import LoopbackServer


def resolving_to(*addresses: str):
    def resolve(host, port, **kwargs):
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return resolve


REFUSED = {
    "loopback": "127.0.0.1",
    "loopback range": "127.8.9.10",
    "private 10/8": "10.1.2.3",
    "private 172.16/12": "172.20.0.5",
    "private 192.168/16": "192.168.1.1",
    "link-local / cloud metadata": "169.254.169.254",
    "CGNAT": "100.64.0.1",
    "unspecified": "0.0.0.0",
    "multicast": "224.0.0.251",
    "broadcast": "255.255.255.255",
    "benchmarking": "198.18.0.1",
    "IPv6 loopback": "::1",
    "IPv6 unique local": "fd00::1",
    "IPv6 link-local": "fe80::1",
    "IPv6 multicast": "ff02::1",
    "IPv4-mapped private": "::ffff:10.0.0.1",
    "IPv4-mapped metadata": "::ffff:169.254.169.254",
}


@pytest.mark.parametrize("address", list(REFUSED.values()), ids=list(REFUSED))
def test_each_refused_range(address):
    with pytest.raises(InvalidSpec) as err:
        check_webhook_url(
            "https://hooks.example.org/x", allow_private=False, resolve=resolving_to(address)
        )
    assert err.value.path == "webhook.url"


def test_one_private_address_among_public_ones_is_refused():
    with pytest.raises(InvalidSpec):
        check_webhook_url(
            "https://hooks.example.org/x",
            allow_private=False,
            resolve=resolving_to("93.184.215.14", "10.0.0.7"),
        )


def test_public_https_is_accepted():
    check_webhook_url(
        "https://hooks.example.org/x",
        allow_private=False,
        resolve=resolving_to("93.184.215.14", "2606:2800:21f:cb07::1"),
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.org/x",
        "ftp://hooks.example.org/x",
        "https:///nohost",
        "file:///etc/passwd",
    ],
)
def test_only_https_with_a_host_in_azure_mode(url):
    with pytest.raises(InvalidSpec):
        check_webhook_url(url, allow_private=False, resolve=resolving_to("93.184.215.14"))


def test_unresolvable_host_is_refused():
    def fail(*args, **kwargs):
        raise socket.gaierror("no such host")

    with pytest.raises(InvalidSpec):
        check_webhook_url("https://nope.invalid/x", allow_private=False, resolve=fail)


def test_loopback_http_allowed_only_when_the_local_host_allows_it():
    check_webhook_url("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(InvalidSpec):
        check_webhook_url("http://127.0.0.1:9/x", allow_private=False)


def test_redirects_are_not_followed():
    with LoopbackServer(lambda req: (302, {"Location": "http://169.254.169.254/"}, b"")) as s:
        record = deliver(f"{s.url}/hook", {"id": "j"}, "k", allow_private=True, timeout=5)
        assert len(s.requests) == 1
    assert record["status"] == "retrying" and record["lastStatusCode"] == 302


def test_the_signature_is_an_hmac_of_the_exact_body():
    with LoopbackServer(lambda req: (200, {}, b"")) as server:
        record = deliver(
            f"{server.url}/hook",
            {"id": "j", "status": "succeeded"},
            "secret-key",
            allow_private=True,
            timeout=5,
        )
        (request,) = server.requests
    expected = hmac.new(b"secret-key", request.body, hashlib.sha256).hexdigest()
    assert (
        request.headers["x-pixelpipe-signature"]
        == f"sha256={expected}"
        == sign(request.body, "secret-key")
    )
    assert record["status"] == "delivered" and record["attempts"] == 1


def test_attempts_count_up_and_end_as_failed():
    with LoopbackServer(lambda req: (500, {}, b"")) as server:
        record = None
        for _ in range(5):
            record = deliver(
                f"{server.url}/hook", {}, "k", allow_private=True, timeout=5, previous=record
            )
    assert record["attempts"] == 5 and record["status"] == "failed"
