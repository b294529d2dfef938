"""OIDC bearer tokens: verified against a local issuer served over real HTTP.

Every token here is made by the tests, with keys they generate; the forged
ones are each refused with :class:`InvalidToken`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from oidc_helpers import AUDIENCE, LocalIssuer, b64url, local_issuer, new_key
from router_helpers import free_port

from agenttier_router.api.auth import Identity
from agenttier_router.api.oidc import (
    IdpUnavailable,
    InvalidToken,
    OidcConfigError,
    OidcVerifier,
)


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer(new_key("rsa-1"), new_key("ec-1", "ES256")) as running:
        yield running


def verifier_for(issuer: LocalIssuer, **options: object) -> OidcVerifier:
    options.setdefault("refresh_interval", 0.0)
    options.setdefault("cache_seconds", 0.0)  # every call verifies; the cache has its own tests
    return OidcVerifier(issuer.url, AUDIENCE, admin_group="agenttier-admins",
                        **options)  # type: ignore[arg-type]


def _unsigned(header: dict[str, object], claims: dict[str, object], signature: bytes) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def _claims(issuer: LocalIssuer, **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": issuer.url, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300,
            "groups": ["agenttier-admins"], **extra}


# -- good tokens ------------------------------------------------------------

def test_an_rs256_token_becomes_an_identity(issuer: LocalIssuer) -> None:
    identity = verifier_for(issuer).verify(issuer.token())
    assert identity == Identity(subject="alice", email="alice@example.com", name="Alice",
                                groups=("eng",), is_admin=False)


def test_an_es256_token_is_accepted(issuer: LocalIssuer) -> None:
    identity = verifier_for(issuer).verify(issuer.token(issuer.keys[1], sub="bob"))
    assert identity.subject == "bob"


def test_admin_group_and_custom_claims(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer, groups_claim="roles", email_claim="upn")
    identity = verifier.verify(issuer.token(roles=["x", "agenttier-admins"], upn="a@corp",
                                            groups=None, email=None, name=None,
                                            preferred_username="al"))
    assert identity == Identity(subject="alice", email="a@corp", name="al",
                                groups=("x", "agenttier-admins"), is_admin=True)


def test_a_single_string_group_claim_counts(issuer: LocalIssuer) -> None:
    identity = verifier_for(issuer).verify(issuer.token(groups="agenttier-admins"))
    assert identity.groups == ("agenttier-admins",) and identity.is_admin


def test_leeway_accepts_a_token_just_expired_or_just_issued(issuer: LocalIssuer) -> None:
    now = int(time.time())
    verifier = verifier_for(issuer)
    assert verifier.verify(issuer.token(exp=now - 20)).subject == "alice"
    assert verifier.verify(issuer.token(nbf=now + 20)).subject == "alice"


def test_keys_are_cached_between_tokens(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer)
    for _ in range(5):
        verifier.verify(issuer.token())
    assert issuer.fetches == {"/.well-known/openid-configuration": 1, "/jwks": 1}


# -- rotation ----------------------------------------------------------------

def test_a_rotated_key_is_fetched_on_its_unknown_kid(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer)
    old = issuer.keys[0]
    old_token = issuer.token(old)
    assert verifier.verify(old_token).subject == "alice"

    issuer.keys = [new_key("rsa-2")]
    assert verifier.verify(issuer.token(sub="after-rotation")).subject == "after-rotation"
    assert issuer.fetches["/jwks"] == 2
    assert issuer.fetches["/.well-known/openid-configuration"] == 1  # discovery is kept
    with pytest.raises(InvalidToken, match="no signing key 'rsa-1'"):
        verifier.verify(old_token)  # the retired key is gone with the refresh


def test_made_up_kids_do_not_hammer_the_issuer(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer, refresh_interval=3600.0)
    verifier.verify(issuer.token())
    stranger = new_key("made-up")
    for _ in range(5):
        with pytest.raises(InvalidToken, match="no signing key"):
            verifier.verify(issuer.token(stranger))
    assert issuer.fetches["/jwks"] == 1


def test_keys_past_their_ttl_are_fetched_again(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer, jwks_ttl=0.0)
    verifier.verify(issuer.token())
    verifier.verify(issuer.token())
    assert issuer.fetches["/jwks"] == 2


# -- forged and wrong tokens ---------------------------------------------------

def test_expired(issuer: LocalIssuer) -> None:
    with pytest.raises(InvalidToken, match="expired"):
        verifier_for(issuer).verify(issuer.token(exp=int(time.time()) - 120))


def test_not_yet_valid(issuer: LocalIssuer) -> None:
    with pytest.raises(InvalidToken, match="nbf"):
        verifier_for(issuer).verify(issuer.token(nbf=int(time.time()) + 120))


def test_wrong_audience(issuer: LocalIssuer) -> None:
    with pytest.raises(InvalidToken, match="audience"):
        verifier_for(issuer).verify(issuer.token(aud="another-app"))


def test_wrong_issuer(issuer: LocalIssuer) -> None:
    with pytest.raises(InvalidToken, match="another issuer"):
        verifier_for(issuer).verify(issuer.token(iss="https://evil.example.com"))


@pytest.mark.parametrize("missing", ["exp", "aud", "iss", "sub"])
def test_a_required_claim_missing(issuer: LocalIssuer, missing: str) -> None:
    with pytest.raises(InvalidToken):
        verifier_for(issuer).verify(issuer.token(**{missing: None}))


def test_signed_by_another_key_under_a_known_kid(issuer: LocalIssuer) -> None:
    impostor = new_key("rsa-1")
    with pytest.raises(InvalidToken, match="signature"):
        verifier_for(issuer).verify(issuer.token(impostor))


def test_tampered_claims(issuer: LocalIssuer) -> None:
    head, _, signature = issuer.token().split(".")
    body = b64url(json.dumps(_claims(issuer)).encode())
    with pytest.raises(InvalidToken, match="signature"):
        verifier_for(issuer).verify(f"{head}.{body}.{signature}")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(issuer: LocalIssuer, alg: str) -> None:
    token = _unsigned({"alg": alg, "typ": "JWT", "kid": "rsa-1"}, _claims(issuer), b"")
    with pytest.raises(InvalidToken, match="not accepted"):
        verifier_for(issuer).verify(token)


def test_hs256_with_the_public_key_as_secret(issuer: LocalIssuer) -> None:
    pem = issuer.keys[0].private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    verifier = verifier_for(issuer)
    for secret in (pem, json.dumps(issuer.keys[0].jwk()).encode()):
        header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
        head = b64url(json.dumps(header).encode())
        body = b64url(json.dumps(_claims(issuer)).encode())
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken, match="not accepted"):
            verifier.verify(f"{head}.{body}.{b64url(mac)}")


def test_an_hmac_key_published_in_the_jwks_is_never_used(issuer: LocalIssuer) -> None:
    secret = b"shared-secret-of-32-bytes-long!!"
    issuer.extra_jwks.append({"kty": "oct", "kid": "oct-1", "alg": "HS256",
                              "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()})
    token = jwt.encode(_claims(issuer), secret, algorithm="HS256", headers={"kid": "oct-1"})
    with pytest.raises(InvalidToken, match="not accepted"):
        verifier_for(issuer).verify(token)


def test_other_asymmetric_algorithms_are_refused(issuer: LocalIssuer) -> None:
    token = jwt.encode(_claims(issuer), issuer.keys[0].private, algorithm="RS384",
                       headers={"kid": "rsa-1"})
    with pytest.raises(InvalidToken, match="'RS384' is not accepted"):
        verifier_for(issuer).verify(token)


def test_an_es256_token_naming_an_rsa_key(issuer: LocalIssuer) -> None:
    token = jwt.encode(_claims(issuer), issuer.keys[1].private, algorithm="ES256",
                       headers={"kid": "rsa-1"})
    with pytest.raises(InvalidToken, match="not a ES256 key"):
        verifier_for(issuer).verify(token)


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "a.b", "." * 3, "x" * 20000])
def test_garbage(issuer: LocalIssuer, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        verifier_for(issuer).verify(garbage)


# -- the issuer ----------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://idp.example.com", "ftp://127.0.0.1", "http://",
                                 "http://10.0.0.1:8080"])
def test_plain_http_only_on_loopback(url: str) -> None:
    with pytest.raises(OidcConfigError):
        OidcVerifier(url, AUDIENCE)


@pytest.mark.parametrize("url", ["https://idp.example.com", "http://127.0.0.1:5556",
                                 "http://localhost", "http://[::1]:80"])
def test_https_anywhere_and_http_on_loopback_are_accepted(url: str) -> None:
    assert OidcVerifier(url, AUDIENCE).issuer == url


def test_an_audience_is_required() -> None:
    with pytest.raises(OidcConfigError, match="audience"):
        OidcVerifier("https://idp.example.com", "")


def test_a_discovery_document_for_another_issuer_is_refused(issuer: LocalIssuer) -> None:
    issuer.discovery_issuer = "https://elsewhere.example.com"
    with pytest.raises(IdpUnavailable, match="names issuer"):
        verifier_for(issuer).verify(issuer.token())


def test_a_plain_http_jwks_uri_elsewhere_is_refused(issuer: LocalIssuer) -> None:
    issuer.jwks_uri = "http://keys.example.com/jwks"
    with pytest.raises(IdpUnavailable, match="plain HTTP"):
        verifier_for(issuer).verify(issuer.token())


def test_an_unreachable_issuer_is_unavailable_not_invalid() -> None:
    verifier = OidcVerifier(f"http://127.0.0.1:{free_port()}", AUDIENCE, timeout=2.0)
    with pytest.raises(InvalidToken):
        verifier.verify("a.b.c")  # malformed: refused before any fetch
    token = jwt.encode({"sub": "x"}, new_key("k").private, algorithm="RS256",
                       headers={"kid": "k"})
    with pytest.raises(IdpUnavailable, match="cannot reach"):
        verifier.verify(token)


def test_an_issuer_answering_500_is_unavailable(issuer: LocalIssuer) -> None:
    issuer.failing = True
    verifier = verifier_for(issuer)
    with pytest.raises(IdpUnavailable, match="500"):
        verifier.verify(issuer.token())
    issuer.failing = False
    assert verifier.verify(issuer.token()).subject == "alice"  # back once the IdP is


def test_known_keys_keep_working_while_the_issuer_is_down() -> None:
    with local_issuer() as running:
        verifier = verifier_for(running, jwks_ttl=0.0, refresh_interval=3600.0)
        good = running.token()
        verifier.verify(good)
        stranger = new_key("rotated")
        rotated = running.token(stranger)
    # the issuer is gone: the cached key still verifies, an unknown kid cannot be checked
    assert verifier.verify(good).subject == "alice"
    with pytest.raises(IdpUnavailable):
        verifier.verify(rotated)


# -- the cache of verified tokens -----------------------------------------------------

def test_a_verified_token_is_remembered(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer, cache_seconds=60.0, jwks_ttl=0.0)
    token = issuer.token()
    first = verifier.verify(token)
    fetched = dict(issuer.fetches)
    assert verifier.verify(token) is first  # not verified again: no key fetch despite ttl 0
    assert issuer.fetches == fetched


def test_only_good_tokens_are_remembered(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer, cache_seconds=60.0)
    expired = issuer.token(exp=int(time.time()) - 120)
    for _ in range(2):
        with pytest.raises(InvalidToken, match="expired"):
            verifier.verify(expired)


def test_without_the_cache_a_withdrawn_key_fails_at_its_next_fetch(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer, jwks_ttl=0.0)
    token = issuer.token()
    verifier.verify(token)
    issuer.keys = [new_key("rsa-2")]
    with pytest.raises(InvalidToken, match="no signing key 'rsa-1'"):
        verifier.verify(token)


def test_the_cache_is_bounded(issuer: LocalIssuer) -> None:
    verifier = verifier_for(issuer, cache_seconds=60.0, cache_size=3)
    for i in range(10):
        verifier.verify(issuer.token(sub=f"user-{i}"))
    assert len(verifier._verified) == 3
