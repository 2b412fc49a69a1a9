"""The dev token issuer: an RSA key, its JWKS, and access tokens shaped like Entra ID's.

The local host serves `GET /.devhost/jwks.json` and `POST /.devhost/token`, and points the
app's PIXELPIPE_AUTH_* settings at itself; the app validates these tokens with exactly the
code that validates Entra ID tokens in Azure. Tests use the same class to mint tokens, good
and bad (expired, wrong audience, foreign key, ...).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["DEV_AUDIENCE", "DEV_TENANT", "TokenIssuer"]

DEV_AUDIENCE = "api://pixelpipe"
DEV_TENANT = "00000000-0000-4000-8000-00000000d0e1"  # a made-up tenant id for local use
PERMISSION = "Images.Process"


class TokenIssuer:
    def __init__(
        self,
        issuer: str,
        *,
        audience: str = DEV_AUDIENCE,
        tenant: str = DEV_TENANT,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        jwks_url: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url or f"{issuer.rstrip('/')}/jwks.json"
        self.audience = audience
        self.tenant = tenant
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid or uuid.uuid4().hex[:16]

    @classmethod
    def persistent(cls, path: Path, issuer: str, **kwargs: Any) -> TokenIssuer:
        """An issuer whose key survives restarts (created on first use, git-ignored)."""
        if path.exists():
            data = json.loads(path.read_text())
            key = serialization.load_pem_private_key(data["key"].encode(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return cls(issuer, key=key, kid=data["kid"], **kwargs)
        made = cls(issuer, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = made.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path.write_text(json.dumps({"kid": made.kid, "key": pem}))
        path.chmod(0o600)
        return made

    def jwk(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def claims(
        self,
        sub: str = "dev-user",
        *,
        scopes: list[str] | None = None,
        roles: list[str] | None = None,
        expires_in: int = 3600,
        **overrides: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "tid": self.tenant,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant}/{sub}")),
            "sub": sub,
            "preferred_username": f"{sub}@pixelpipe.local",
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "ver": "2.0",
        }
        if scopes is None and roles is None:
            scopes = [PERMISSION]
        if scopes:
            claims["scp"] = " ".join(scopes)
        if roles:
            claims["roles"] = roles
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, sub: str = "dev-user", **kwargs: Any) -> str:
        return self.sign(self.claims(sub, **kwargs))

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(
            claims, self.key, algorithm="RS256", headers={"kid": self.kid, **(headers or {})}
        )
