"""OIDC sign-in: turn an ``Authorization: Bearer <JWT>`` into an :class:`Identity`.

The issuer's signing keys are found through its discovery document
(``<issuer>/.well-known/openid-configuration`` -> ``jwks_uri``), cached, and
fetched again when a token names a key id (``kid``) the cache does not hold,
which is how an issuer's key rotation reaches us::

    verifier = OidcVerifier("https://login.example.com", "agenttier",
                            admin_group="agenttier-admins")
    identity = verifier.verify(token)      # or raises InvalidToken / IdpUnavailable

Only RS256 and ES256 signatures are accepted: never ``none``, never HMAC (a
``HS256`` token "signed" with the issuer's public key must not pass). The
signature, ``iss``, ``aud``, ``exp`` and ``nbf`` are checked with 60 s of
leeway. A plain-HTTP issuer is accepted only on a loopback address.

The errors::

    OidcError
      + InvalidToken     the token is malformed, forged, expired or not for us (the API: 401)
      + IdpUnavailable   the issuer cannot be reached to learn its keys (the API: 503)
      + OidcConfigError  the issuer URL or its discovery document is unusable (at start-up)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from .auth import Identity
from .hosts import loopback_host

__all__ = [
    "ACCEPTED_ALGORITHMS",
    "IdpUnavailable",
    "InvalidToken",
    "OidcConfigError",
    "OidcError",
    "OidcVerifier",
]

_log = logging.getLogger(__name__)

ACCEPTED_ALGORITHMS = ("RS256", "ES256")
"""The only signature algorithms a token may use."""

_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
_MAX_TOKEN = 16 * 1024
_MAX_DOCUMENT = 1 << 20
_NAME_CLAIMS = ("name", "preferred_username")


class OidcError(Exception):
    """Base of every error OIDC sign-in raises."""


class InvalidToken(OidcError):
    """The bearer token is malformed, badly signed, expired, or issued for someone else."""


class IdpUnavailable(OidcError):
    """The identity provider cannot be reached (or answers nonsense), so keys are unknown."""


class OidcConfigError(OidcError, ValueError):
    """The issuer URL is unusable: not https (outside loopback), or malformed."""


def _check_url(url: str, what: str) -> str:
    """Return ``url`` if it is https, or http on loopback; raise OidcConfigError otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as error:
        raise OidcConfigError(f"{what} {url!r} is not a URL: {error}") from None
    if not host:
        raise OidcConfigError(f"{what} {url!r} has no host")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and loopback_host(host):
        return url
    if parts.scheme == "http":
        raise OidcConfigError(
            f"{what} {url!r} is plain HTTP; only https is accepted outside loopback")
    raise OidcConfigError(f"{what} {url!r} must be an https URL")


class OidcVerifier:
    """Verifies bearer JWTs against one issuer's published keys, for one audience.

    ``groups_claim`` names the claim holding the caller's groups (a list of
    strings, or one string); ``email_claim`` the claim holding the email
    (``email`` when None). Members of ``admin_group`` are admins.
    ``jwks_ttl`` is how long fetched keys are trusted before a routine
    re-fetch; if that re-fetch fails, the keys already known keep working.
    ``refresh_interval`` is the least time between two fetches caused by
    unknown key ids, so tokens with made-up ``kid`` values cannot make the
    Router hammer the identity provider. A token that passed is remembered
    (by its SHA-256) for ``cache_seconds`` or until it expires, whichever is
    first, so a client re-sending it is not re-verified each time: a key the
    issuer withdraws stops its tokens within that time. Safe to use from
    several threads.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        groups_claim: str = "groups",
        email_claim: str | None = None,
        admin_group: str | None = None,
        leeway: float = 60.0,
        timeout: float = 5.0,
        jwks_ttl: float = 3600.0,
        refresh_interval: float = 10.0,
        verify_tls: bool | str = True,
        cache_seconds: float = 60.0,
        cache_size: int = 4096,
    ) -> None:
        if not audience:
            raise OidcConfigError("an OIDC audience is required")
        self._issuer = _check_url(issuer, "OIDC issuer")
        self._audience = audience
        self._groups_claim = groups_claim
        self._email_claim = email_claim or "email"
        self._admin_group = admin_group
        self._leeway = leeway
        self._timeout = timeout
        self._jwks_ttl = jwks_ttl
        self._refresh_interval = refresh_interval
        self._verify_tls = verify_tls
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._unnamed: list[jwt.PyJWK] = []
        self._fetched_at: float | None = None
        self._last_attempt = -float("inf")
        self._last_failure: str | None = None
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._verified: dict[bytes, tuple[Identity, float]] = {}

    def __repr__(self) -> str:
        return (f"OidcVerifier(issuer={self._issuer!r}, audience={self._audience!r}, "
                f"keys={len(self._keys) + len(self._unnamed)})")

    @property
    def issuer(self) -> str:
        """The issuer tokens must name in ``iss``."""
        return self._issuer

    def verify(self, token: str) -> Identity:
        """Return who ``token`` says the caller is, once every check has passed.

        Raises :class:`InvalidToken` for any token that is not good, and
        :class:`IdpUnavailable` when the issuer's keys are needed but cannot
        be fetched.
        """
        if not token or len(token) > _MAX_TOKEN:
            raise InvalidToken("the token is empty or too long")
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        remembered = self._verified.get(digest)
        if remembered is not None and time.time() < remembered[1]:
            return remembered[0]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"malformed token: {error}") from None
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGORITHMS:
            raise InvalidToken(f"token algorithm {alg!r} is not accepted; "
                               f"only {', '.join(ACCEPTED_ALGORITHMS)}")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("token 'kid' must be a string")
        key = self._key_for(kid, alg)
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], audience=self._audience,
                issuer=self._issuer, leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not for this audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(f"invalid token: {error}") from None
        identity = self._identity(claims)
        self._remember(digest, identity, claims)
        return identity

    def _remember(self, digest: bytes, identity: Identity, claims: Mapping[str, Any]) -> None:
        if self._cache_seconds <= 0:
            return
        until = min(float(claims["exp"]) + self._leeway, time.time() + self._cache_seconds)
        if len(self._verified) >= self._cache_size:  # the oldest entry goes (dicts keep order)
            with contextlib.suppress(StopIteration, KeyError, RuntimeError):
                del self._verified[next(iter(self._verified))]
        self._verified[digest] = (identity, until)

    def refresh(self) -> None:
        """Fetch the discovery document (once) and the keys now; raise IdpUnavailable if not."""
        with self._lock:
            self._fetch_locked()

    # -- keys ---------------------------------------------------------------

    def _key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        with self._lock:
            now = time.monotonic()
            if self._fetched_at is None:
                if (self._last_failure is not None
                        and now - self._last_attempt < self._refresh_interval):
                    # fail fast while the IdP is down, rather than one timeout per request
                    raise IdpUnavailable(self._last_failure)
                self._fetch_locked()
            elif now - self._fetched_at > self._jwks_ttl:
                try:
                    self._fetch_locked()
                except IdpUnavailable as error:  # keys we know stay good while the IdP is away
                    _log.warning("could not refresh the OIDC keys, keeping the old ones: %s", error)
            key = self._lookup(kid, alg)
            if key is None:  # an unknown kid: the issuer may have rotated its keys
                if time.monotonic() - self._last_attempt >= self._refresh_interval:
                    self._fetch_locked()
                    key = self._lookup(kid, alg)
                elif self._last_failure is not None:
                    raise IdpUnavailable(self._last_failure)
        if key is None:
            raise InvalidToken(f"no signing key {kid!r} for {alg} at the issuer")
        if key.key_type != _KEY_TYPES[alg]:
            raise InvalidToken(f"key {kid!r} is not a {alg} key")
        return key

    def _lookup(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        fitting = [k for k in [*self._keys.values(), *self._unnamed]
                   if k.key_type == _KEY_TYPES[alg]]
        return fitting[0] if len(fitting) == 1 else None

    def _fetch_locked(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            self._fetch_keys_locked()
        except IdpUnavailable as error:
            self._last_failure = str(error)
            raise
        self._last_failure = None

    def _fetch_keys_locked(self) -> None:
        if self._jwks_uri is None:
            discovery = self._get_json(
                self._issuer.rstrip("/") + "/.well-known/openid-configuration")
            if discovery.get("issuer") != self._issuer:
                raise IdpUnavailable(
                    f"the discovery document names issuer {discovery.get('issuer')!r}, "
                    f"not {self._issuer!r}")
            uri = discovery.get("jwks_uri")
            if not isinstance(uri, str):
                raise IdpUnavailable("the discovery document has no jwks_uri")
            try:
                self._jwks_uri = _check_url(uri, "jwks_uri")
            except OidcConfigError as error:
                raise IdpUnavailable(str(error)) from None
        keys, unnamed = _parse_jwks(self._get_json(self._jwks_uri))
        self._keys, self._unnamed = keys, unnamed
        self._fetched_at = time.monotonic()

    def _get_json(self, url: str) -> Mapping[str, Any]:
        try:
            with httpx.Client(timeout=self._timeout, verify=self._verify_tls,
                              follow_redirects=False) as client, \
                    client.stream("GET", url, headers={"Accept": "application/json"}) as reply:
                if reply.status_code != 200:
                    raise IdpUnavailable(f"GET {url} answered {reply.status_code}")
                body = bytearray()
                for chunk in reply.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_DOCUMENT:
                        raise IdpUnavailable(f"GET {url}: the document is over 1 MiB")
        except httpx.HTTPError as error:
            raise IdpUnavailable(f"cannot reach the identity provider at {url}: {error}") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise IdpUnavailable(f"GET {url} did not answer JSON") from None
        if not isinstance(data, dict):
            raise IdpUnavailable(f"GET {url} did not answer a JSON object")
        return data

    # -- claims -------------------------------------------------------------

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("the token has no subject")
        email = claims.get(self._email_claim)
        groups_value = claims.get(self._groups_claim)
        if isinstance(groups_value, str):
            groups: tuple[str, ...] = (groups_value,)
        elif isinstance(groups_value, list):
            groups = tuple(g for g in groups_value if isinstance(g, str))
        else:
            groups = ()
        name = next((claims[c] for c in _NAME_CLAIMS if isinstance(claims.get(c), str)), "")
        return Identity(
            subject=subject,
            email=email if isinstance(email, str) else "",
            name=name,
            groups=groups,
            is_admin=self._admin_group is not None and self._admin_group in groups,
        )


def _parse_jwks(document: Mapping[str, Any]) -> tuple[dict[str, jwt.PyJWK], list[jwt.PyJWK]]:
    """The usable signing keys of a JWKS, by kid (and those without one), skipping the rest."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise IdpUnavailable("the JWKS has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    unnamed: list[jwt.PyJWK] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("RSA", "EC"):
            continue  # never an "oct" (HMAC) key
        alg = entry.get("alg")
        if alg is not None and alg not in ACCEPTED_ALGORITHMS:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=alg or ("RS256" if entry["kty"] == "RSA" else "ES256"))
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as error:
            _log.warning("skipping an unusable key in the JWKS: %s", error)
            continue
        kid = entry.get("kid")
        if isinstance(kid, str):
            keys[kid] = key
        else:
            unnamed.append(key)
    return keys, unnamed
