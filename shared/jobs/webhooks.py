"""Webhooks: tell a client's endpoint that its job is done.

When a job reaches a terminal state and its spec named a webhook, the final job document (as
`GET /api/jobs/<id>` returns it) is POSTed to the URL with
`X-Pixelpipe-Signature: sha256=<hex HMAC-SHA256 of the exact body>`, keyed with the webhook
signing secret. The orchestration retries failed deliveries with durable backoff (2, 4, 8,
16 s); each attempt updates the job's delivery record (`webhook` in the job document).

Outbound requests are an SSRF risk, so a URL must be `https` and resolve only to public
addresses: loopback, private, link-local (cloud metadata at 169.254.169.254 among them),
multicast, reserved and unspecified ranges are refused, both when the job is submitted and
again at delivery (the DNS answer may have changed). Redirects are not followed. The local
host may allow loopback and plain http with `PIXELPIPE_WEBHOOK_ALLOW_PRIVATE=true`, for tests.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.errors import InvalidSpec
from shared.jobs.model import iso, utcnow

__all__ = ["MAX_ATTEMPTS", "check_webhook_url", "deliver", "sign"]

MAX_ATTEMPTS = 5
SIGNATURE_HEADER = "X-Pixelpipe-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def check_webhook_url(url: str, *, allow_private: bool, resolve: Any = socket.getaddrinfo) -> None:
    """Refuse URLs a webhook may not target (400 INVALID_SPEC naming `webhook.url`)."""
    parts = urlsplit(url)
    if allow_private:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidSpec("must be an http(s) URL", path="webhook.url")
        return
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidSpec("must be an https URL", path="webhook.url")
    try:
        infos = resolve(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise InvalidSpec("the host name does not resolve", path="webhook.url") from None
    addresses = {ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos}
    if not addresses or any(_refused(a) for a in addresses):
        raise InvalidSpec("must point at a public internet address", path="webhook.url")


def deliver(
    url: str,
    document: dict[str, Any],
    secret: str,
    *,
    allow_private: bool,
    timeout: float,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST the document once and return the new delivery record: `status` is `delivered`,
    `retrying` (the caller should raise so the durable retry follows) or `failed` (the last
    attempt)."""
    attempts = int((previous or {}).get("attempts", 0)) + 1
    record: dict[str, Any] = {"url": url, "attempts": attempts, "lastAttemptAt": iso(utcnow())}
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    try:
        check_webhook_url(url, allow_private=allow_private)
        response = requests.post(
            url,
            data=body,
            timeout=timeout,
            allow_redirects=False,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, secret),
                "User-Agent": "pixelpipe-webhook/1",
            },
        )
        record["lastStatusCode"] = response.status_code
        if 200 <= response.status_code < 300:
            return {**record, "status": "delivered", "deliveredAt": record["lastAttemptAt"]}
        reason = f"the endpoint answered {response.status_code}"
    except InvalidSpec as exc:
        reason = exc.message
    except requests.RequestException as exc:
        reason = f"the endpoint could not be reached ({exc.__class__.__name__})"
    return {
        **record,
        "status": "failed" if attempts >= MAX_ATTEMPTS else "retrying",
        "lastError": reason,
    }
