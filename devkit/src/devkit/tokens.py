"""An in-test token issuer: a fresh RSA key, its JWKS and RFC 8414 metadata served on loopback, and a minter.

Services under test are pointed at it through AUTH_ISSUER / AUTH_JWKS_URL, so they validate tokens
exactly as they would validate the real auth-server's (signature, kid, iss, aud, exp, scope).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

# A sentinel for `mint(**overrides)`: a claim given this value is left out of the token.
OMIT: Any = object()


def generate_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA private key (never written to disk)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TestIssuer:
    """A minimal authorization server for tests: publishes its public key and signs access tokens.

    Use it as a context manager (or call `start()` / `stop()`); it listens on 127.0.0.1 on a free port.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, *, kid: str | None = None) -> None:
        self.private_key = generate_rsa_key()
        self.kid = kid or f"test-{uuid.uuid4().hex[:8]}"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.jwks_requests = 0

    @property
    def issuer(self) -> str:
        """The issuer URL (no trailing slash): also where RFC 8414 metadata is discovered."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def jwks(self) -> dict[str, Any]:
        """The published JSON Web Key Set: the public half of the signing key."""
        public_jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        public_jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [public_jwk]}

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
        }

    def mint(
        self,
        *,
        sub: str = "alice",
        aud: str | list[str],
        scope: str | Iterable[str] = "",
        client_id: str = "test-client",
        expires_in: int = 300,
        headers: Mapping[str, Any] | None = None,
        signing_key: rsa.RSAPrivateKey | None = None,
        **overrides: Any,
    ) -> str:
        """Sign an RFC 9068 access token.

        `overrides` replace claims (a claim set to OMIT is left out); `headers` extend the JOSE header.
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": aud,
            "client_id": client_id,
            "scope": scope if isinstance(scope, str) else " ".join(scope),
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not OMIT}
        header = {"typ": "at+jwt", "kid": self.kid, **(headers or {})}
        return jwt.encode(claims, signing_key or self.private_key, algorithm="RS256", headers=header)

    def start(self) -> TestIssuer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TestIssuer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/jwks":
                    issuer.jwks_requests += 1
                    self._send_json(issuer.jwks())
                elif self.path in (
                    "/.well-known/oauth-authorization-server",
                    "/.well-known/openid-configuration",
                ):
                    self._send_json(issuer.metadata())
                else:
                    self.send_error(404)

            def _send_json(self, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        return Handler
