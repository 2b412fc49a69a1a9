"""Bearer-token authentication: Entra ID access tokens, validated in code.

The same code runs everywhere; only settings differ. In Azure the issuer is Entra ID (its
JWKS URL, the tenant's issuers, the API's audience); locally the dev host is the issuer (it
serves a JWKS and mints tokens) and its URLs go in the same settings. There is no special
case for a local issuer here.

A token is accepted when, in this order:

1. the header is `Authorization: Bearer <JWT>`;
2. the JWT's header names `alg: RS256` (nothing else: no `none`, no HS256 key confusion) and
   a `kid`;
3. the `kid` is in the issuer's JWKS (fetched once, cached for an hour; an unknown `kid`
   triggers one refetch, at most every 30 s, so rotated keys are picked up and garbage
   `kid`s cannot hammer the issuer);
4. the signature verifies, `exp` and `nbf` hold within the leeway, `iss` is one of the
   configured issuers and `aud` one of the configured audiences;
5. `tid` is on the tenant allow-list (when one is configured);
6. `scp` (delegated) or `roles` (application) contains the required permission,
   `Images.Process`. Failing only this step is a 403; every other failure is a 401.

The principal's key, which owns jobs, is `<tid>/<oid>`, or `sub/<sub>` without them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from shared.config import Settings
from shared.errors import Forbidden, Unauthenticated, Unavailable

__all__ = ["JwksCache", "Principal", "TokenValidator"]

ALGORITHM = "RS256"


@dataclass(frozen=True)
class Principal:
    key: str  # owns jobs: "<tid>/<oid>" or "sub/<sub>"
    subject: str
    tenant: str | None
    object_id: str | None
    name: str | None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Principal:
        tid, oid, sub = claims.get("tid"), claims.get("oid"), str(claims.get("sub") or "")
        key = f"{tid}/{oid}" if tid and oid else f"sub/{sub}"
        name = claims.get("preferred_username") or claims.get("name") or claims.get("appid")
        return cls(key, sub, tid, oid, name)


class JwksCache:
    """The issuer's signing keys by `kid`, refreshed hourly or when an unknown `kid` shows up."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 3600,
        min_refresh_interval: float = 30,
        fetch: Callable[[str], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._clock = clock
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self._fetch = fetch or _http_get_json
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> RSAPublicKey:
        now = self._clock()
        with self._lock:
            age = None if self._fetched_at is None else now - self._fetched_at
            if (
                age is None
                or age > self.ttl
                or (kid not in self._keys and age >= self.min_refresh_interval)
            ):
                self._refresh(now)
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("The token was signed with an unknown key.")
        return key

    def _refresh(self, now: float) -> None:
        try:
            document = self._fetch(self.url)
        except (requests.RequestException, ValueError) as exc:
            if self._keys:  # keep serving the keys we have
                return
            raise Unavailable("The token issuer's keys cannot be fetched.") from exc
        keys: dict[str, RSAPublicKey] = {}
        for jwk in document.get("keys", []):
            if jwk.get("kty") != "RSA" or not jwk.get("kid") or jwk.get("use", "sig") != "sig":
                continue
            try:
                public = RSAAlgorithm.from_jwk(json.dumps(jwk))
            except (jwt.InvalidKeyError, ValueError, TypeError):
                continue
            if isinstance(public, RSAPublicKey):
                keys[jwk["kid"]] = public
        self._keys = keys
        self._fetched_at = now


def _http_get_json(url: str) -> dict[str, Any]:
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError("JWKS is not a JSON object")
    return document


class TokenValidator:
    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        self.settings = settings
        self.jwks = jwks or (JwksCache(settings.auth_jwks_url) if settings.auth_jwks_url else None)

    def authenticate(self, authorization: str | None) -> Principal:
        """Validate an `Authorization` header value; return who is calling."""
        if self.jwks is None or not self.settings.auth_issuers or not self.settings.auth_audiences:
            raise Unavailable("Authentication is not configured on this deployment.")
        if not authorization:
            raise Unauthenticated()
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Use an `Authorization: Bearer <token>` header.")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("The token is not a well-formed JWT.") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated("The token must be signed with RS256.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("The token names no signing key.")
        key = self.jwks.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=list(self.settings.auth_audiences),
                issuer=list(self.settings.auth_issuers),
                leeway=self.settings.auth_leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("The token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("The token is not meant for this API.") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(
                "The token comes from an issuer this API does not trust."
            ) from None
        except jwt.PyJWTError:
            raise Unauthenticated("The token is not valid.") from None
        tenants = self.settings.auth_tenants
        if tenants and claims.get("tid") not in tenants:
            raise Unauthenticated("The token's tenant is not allowed here.")
        if not claims.get("sub") and not (claims.get("tid") and claims.get("oid")):
            raise Unauthenticated("The token identifies no principal.")
        permission = self.settings.auth_permission
        scopes = str(claims.get("scp") or "").split()
        roles = claims.get("roles") or []
        if permission not in scopes and not (isinstance(roles, list) and permission in roles):
            raise Forbidden(f"The token does not grant {permission}.")
        return Principal.from_claims(claims)


def www_authenticate(error: Exception) -> str:
    """The `WWW-Authenticate` header for a 401 or 403 (RFC 6750)."""
    if isinstance(error, Forbidden):
        return 'Bearer realm="pixelpipe", error="insufficient_scope"'
    if isinstance(error, Unauthenticated) and error.message != Unauthenticated.default_message:
        text = error.message.replace('"', "'")
        return f'Bearer realm="pixelpipe", error="invalid_token", error_description="{text}"'
    return 'Bearer realm="pixelpipe"'
