"""The token matrix (SECURITY.md item 26) and JWKS key rotation, through the HTTP functions.

Tokens are minted with the test issuer's own RSA key; its JWKS is served over loopback HTTP,
and the app fetches it exactly as it fetches Entra ID's.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devhost.issuer import TokenIssuer
from shared.config import Settings
from shared.errors import Unauthenticated, Unavailable
from shared.security.auth import JwksCache, TokenValidator
from tests.functions.helpers import call
from tests.support.loopback import LoopbackServer

pytestmark = pytest.mark.azurite


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, claims: dict, signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def expect(token: str | None, status: int, code: str):
    reply = call("jobs", token=token)
    assert (reply.status, reply.code) == (status, code), reply.body
    if status == 401:
        assert reply.headers["WWW-Authenticate"].startswith('Bearer realm="pixelpipe"')
    return reply


def test_a_good_token_passes(rt, issuer):
    assert call("jobs", token=issuer.token()).status == 200


def test_no_token(rt):
    expect(None, 401, "UNAUTHENTICATED")
    reply = call("jobs", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert reply.status == 401


def test_expired_beyond_the_leeway(rt, issuer):
    leeway = rt.settings.auth_leeway_seconds
    expect(issuer.token(expires_in=-(leeway + 5)), 401, "UNAUTHENTICATED")
    assert call("jobs", token=issuer.token(expires_in=-(leeway - 20))).status == 200  # skew


def test_not_valid_yet(rt, issuer):
    claims = issuer.claims(nbf=int(time.time()) + 600)
    expect(issuer.sign(claims), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "override",
    [
        {"aud": "api://someone-else"},
        {"iss": "https://login.evil.example/v2.0"},
        {"tid": "11111111-2222-3333-4444-555555555555"},
    ],
    ids=["audience", "issuer", "tenant"],
)
def test_wrong_audience_issuer_or_tenant(rt, issuer, override):
    expect(issuer.sign(issuer.claims(**override)), 401, "UNAUTHENTICATED")


def test_missing_scope_or_role_is_403(rt, issuer):
    expect(issuer.token(scopes=["User.Read"]), 403, "FORBIDDEN")
    expect(issuer.token(roles=["Images.Read"]), 403, "FORBIDDEN")


def test_signed_with_another_key(rt, issuer):
    stranger = TokenIssuer(
        issuer.issuer, audience=issuer.audience, tenant=issuer.tenant, kid=issuer.kid
    )  # same kid, different key
    expect(stranger.token(), 401, "UNAUTHENTICATED")


def test_tampered_payload(rt, issuer):
    header, _, signature = issuer.token("alice").split(".")
    claims = issuer.claims("mallory")
    expect(f"{header}.{b64(json.dumps(claims).encode())}.{signature}", 401, "UNAUTHENTICATED")


def test_alg_none(rt, issuer):
    expect(
        forged({"alg": "none", "typ": "JWT", "kid": issuer.kid}, issuer.claims()),
        401,
        "UNAUTHENTICATED",
    )


def test_hs256_key_confusion(rt, issuer):
    """HS256 keyed with the issuer's *public* key: the classic RS256/HS256 confusion."""
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(issuer.claims()).encode())}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    expect(f"{signing_input}.{b64(signature)}", 401, "UNAUTHENTICATED")


def test_unknown_kid(rt, issuer):
    expect(issuer.sign(issuer.claims(), headers={"kid": "no-such-key"}), 401, "UNAUTHENTICATED")


def test_garbage(rt):
    for token in ("a.b.c", "x" * 5000, "eyJ.eyJ.", "\u00e9\u00e9"):
        expect(token, 401, "UNAUTHENTICATED")


# -- JWKS rotation ------------------------------------------------------------------------------


def settings_for(url: str, issuer: TokenIssuer) -> Settings:
    return Settings.from_env(
        {
            "PIXELPIPE_AUTH_JWKS_URL": url,
            "PIXELPIPE_AUTH_ISSUERS": issuer.issuer,
            "PIXELPIPE_AUTH_AUDIENCES": issuer.audience,
        }
    )


def test_jwks_rotation_new_kid_accepted_removed_kid_refused():
    old = TokenIssuer("https://issuer.example/v2.0")
    new = TokenIssuer(old.issuer, tenant=old.tenant, audience=old.audience)
    published = {"keys": [old.jwk()]}
    now = [1000.0]
    with LoopbackServer(lambda req: LoopbackServer.json_reply(published)) as jwks:
        validator = TokenValidator(
            settings_for(f"{jwks.url}/keys", old),
            JwksCache(f"{jwks.url}/keys", min_refresh_interval=0, clock=lambda: now[0]),
        )
        assert validator.authenticate(f"Bearer {old.token('a')}").subject == "a"
        published["keys"] = [old.jwk(), new.jwk()]  # the issuer rolls a new key
        assert validator.authenticate(f"Bearer {new.token('b')}").subject == "b"
        published["keys"] = [new.jwk()]  # and retires the old one
        now[0] += 3601  # the hourly refresh comes round
        with pytest.raises(Unauthenticated):
            validator.authenticate(f"Bearer {old.token('a')}")
        fetches = len(jwks.requests)
    assert fetches == 3


def test_unknown_kids_cannot_hammer_the_issuer():
    issuer = TokenIssuer("https://issuer.example/v2.0")
    with LoopbackServer(lambda req: LoopbackServer.json_reply({"keys": [issuer.jwk()]})) as jwks:
        validator = TokenValidator(
            settings_for(f"{jwks.url}/keys", issuer),
            JwksCache(f"{jwks.url}/keys", min_refresh_interval=30),
        )
        for i in range(20):
            with pytest.raises(Unauthenticated):
                validator.authenticate(
                    f"Bearer {issuer.sign(issuer.claims(), headers={'kid': f'bogus-{i}'})}"
                )
        assert len(jwks.requests) == 1


def test_issuer_down_is_503_not_401():
    issuer = TokenIssuer("https://issuer.example/v2.0")
    with LoopbackServer(lambda req: (500, {}, b"down")) as jwks:
        validator = TokenValidator(settings_for(f"{jwks.url}/keys", issuer))
        with pytest.raises(Unavailable):
            validator.authenticate(f"Bearer {issuer.token()}")


def test_rsa_key_of_the_wrong_kind_in_jwks_is_ignored():
    issuer = TokenIssuer("https://issuer.example/v2.0")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    odd = {"kty": "oct", "kid": issuer.kid, "k": b64(b"secret")}
    enc = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other.public_key())) | {
        "kid": "enc-key",
        "use": "enc",
    }
    with LoopbackServer(lambda req: LoopbackServer.json_reply({"keys": [odd, enc]})) as jwks:
        validator = TokenValidator(settings_for(f"{jwks.url}/keys", issuer))
        with pytest.raises(Unauthenticated):
            validator.authenticate(f"Bearer {issuer.token()}")
