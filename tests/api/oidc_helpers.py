"""A local OIDC issuer for the tests: discovery and JWKS served over real HTTP.

:class:`LocalIssuer` runs an :mod:`http.server` on 127.0.0.1 in a background
thread. It serves ``/.well-known/openid-configuration`` and ``/jwks`` from
keys the tests generate, can rotate them, can be made to answer 500, and
counts what was fetched. :meth:`LocalIssuer.token` signs tokens with its keys.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["AUDIENCE", "LocalIssuer", "SigningKey", "b64url", "local_issuer", "new_key"]

AUDIENCE = "agenttier-router"


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    """A private key, its algorithm and key id, and its public JWK."""

    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        """The public half as a JWK."""
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return data


def new_key(kid: str, alg: str = "RS256") -> SigningKey:
    """A fresh RSA-2048 (RS256) or P-256 (ES256) key."""
    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid=kid, alg=alg, private=private)


@dataclass
class LocalIssuer:
    """An identity provider on a real port: its URL, its current keys, and what it served."""

    url: str
    keys: list[SigningKey]
    fetches: dict[str, int] = field(default_factory=dict)
    failing: bool = False
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)
    discovery_issuer: str | None = None
    jwks_uri: str | None = None

    def token(self, key: SigningKey | None = None, *, headers: dict[str, Any] | None = None,
              **claims: Any) -> str:
        """A token signed by ``key`` (the first current key by default), with sane claims."""
        key = key or self.keys[0]
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.url, "aud": AUDIENCE, "sub": "alice",
                                "email": "alice@example.com", "name": "Alice",
                                "groups": ["eng"], "iat": now, "exp": now + 300}
        body.update(claims)
        for name in [n for n, v in body.items() if v is None]:
            del body[name]
        return jwt.encode(body, key.private, algorithm=key.alg,
                          headers={"kid": key.kid, **(headers or {})})

    def document(self, path: str) -> dict[str, Any] | None:
        """What the issuer serves at ``path``."""
        if path == "/.well-known/openid-configuration":
            return {"issuer": self.discovery_issuer or self.url,
                    "jwks_uri": self.jwks_uri or f"{self.url}/jwks",
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
        if path == "/jwks":
            return {"keys": [k.jwk() for k in self.keys] + self.extra_jwks}
        return None


@contextmanager
def local_issuer(*keys: SigningKey) -> Iterator[LocalIssuer]:
    """Serve an issuer holding ``keys`` (one new RS256 key by default) until the block ends."""
    holder: dict[str, LocalIssuer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = holder["issuer"]
            issuer.fetches[self.path] = issuer.fetches.get(self.path, 0) + 1
            document = None if issuer.failing else issuer.document(self.path)
            status = 500 if issuer.failing else (200 if document is not None else 404)
            body = json.dumps(document or {"error": "no"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer = LocalIssuer(url=f"http://127.0.0.1:{server.server_address[1]}",
                         keys=list(keys) or [new_key("k1")])
    holder["issuer"] = issuer
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
