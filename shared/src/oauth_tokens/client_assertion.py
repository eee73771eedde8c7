"""private_key_jwt: a confidential client proves who it is with a signed JWT instead of a shared secret.

RFC 7523 §2.2 and §3, as OpenID Connect Core §9 and the MCP client-credentials extension (SEP-1046,
which recommends it over secrets) use it. Each token request carries a fresh assertion:

- header: `alg` (ES256 by default; RS256 or EdDSA by choice of key), `kid` (the key's RFC 7638 thumbprint),
  `typ: JWT`;
- claims: `iss` = `sub` = the client_id, `aud` = the authorization server's issuer identifier (by default;
  `audience="issuer_and_token_endpoint"` adds the token endpoint URL, `"token_endpoint"` sends that alone,
  for providers that still expect it), a random `jti`, `iat`, and `exp` at most ASSERTION_LIFETIME_SECONDS
  (60 s) later.

The server verifies it with the client's public keys, which it holds (`jwks`) or fetches (`jwks_uri`):
a service publishes `KeyStore.jwks()` (crm-mcp at /.well-known/jwks.json). The private keys live in
a directory under the service's data directory (`client_keys`: 0600 PEM files, generated on first
start, rotated with publish-ahead as signing_keys.py describes), never in settings or `.env`.

Rotate from the repository root, with the service running or not:

    uv run python -m oauth_tokens.client_assertion rotate --keys-dir data/crm-mcp/client-keys

The new key is published at once and signs 60 s later (by then every server that refetches for an
unknown `kid` can have seen it); the old one stays published for another ASSERTION_LIFETIME_SECONDS +
RETIREMENT_MARGIN_SECONDS, then goes.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol, get_args

import jwt
from cryptography.hazmat.primitives import serialization

from oauth_tokens.jwks import JWKS_REFETCH_COOLDOWN_SECONDS
from oauth_tokens.signing_keys import (
    PUBLISH_AHEAD_SECONDS,
    KeyStore,
    PrivateKey,
    SigningAlgorithm,
    SigningKey,
    describe_keys,
    key_fits,
    publish_ahead_argument,
    when,
)

__all__ = [
    "ASSERTION_LIFETIME_SECONDS",
    "CLIENT_ASSERTION_TYPE",
    "AssertionAudience",
    "AssertionKey",
    "ClientAssertionSigner",
    "StaticKey",
    "client_keys",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# RFC 7523 §3 leaves it to the client; a minute covers clock skew and a slow request, and limits replay.
ASSERTION_LIFETIME_SECONDS = 60
AssertionAudience = Literal["issuer", "issuer_and_token_endpoint", "token_endpoint"]
SIGNING_ALGORITHMS: tuple[SigningAlgorithm, ...] = get_args(SigningAlgorithm)


class AssertionKey(Protocol):
    """Where the key that signs now comes from: a KeyStore (rotating), or a StaticKey."""

    def signing_key(self) -> SigningKey: ...


class StaticKey:
    """One private key given to the client (e.g. a PEM a provider or a test harness issued); never rotates."""

    def __init__(self, private_key: PrivateKey, algorithm: SigningAlgorithm, kid: str | None = None) -> None:
        if algorithm not in SIGNING_ALGORITHMS or not key_fits(private_key, algorithm):
            raise ValueError(f"The key is not a {algorithm} key (supported: {', '.join(SIGNING_ALGORITHMS)})")
        self._key = SigningKey(kid=kid, private_key=private_key, algorithm=algorithm)

    def __repr__(self) -> str:
        return f"StaticKey(algorithm={self._key.algorithm!r}, kid={self._key.kid!r})"

    @classmethod
    def from_pem(cls, pem: str | bytes, algorithm: SigningAlgorithm, kid: str | None = None) -> StaticKey:
        """An unencrypted PKCS#8 or traditional PEM private key; ValueError if it is not one for `algorithm`."""
        loaded = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
        if not isinstance(loaded, PrivateKey):
            raise ValueError(f"The key is not a {algorithm} key")
        return cls(loaded, algorithm, kid)

    def signing_key(self) -> SigningKey:
        return self._key


def client_keys(directory: Path, algorithm: SigningAlgorithm = "ES256") -> KeyStore:
    """The client's assertion keys under `directory`: the first one generated now if there is none.

    A retired key stays published ASSERTION_LIFETIME_SECONDS (what it signed lives no longer), plus the
    store's margin. TypeError if the directory holds keys of another algorithm.
    """
    store = KeyStore(directory, ASSERTION_LIFETIME_SECONDS, algorithm=algorithm)
    store.ensure_key()
    store.prune()
    return store


class ClientAssertionSigner:
    """Signs client assertions for the authorization server whose issuer identifier is `issuer`."""

    def __init__(
        self,
        keys: AssertionKey,
        issuer: str,
        *,
        audience: AssertionAudience = "issuer",
        lifetime_seconds: int = ASSERTION_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer:
            raise ValueError("issuer (the authorization server's issuer identifier, the assertion's aud) is required")
        if audience not in get_args(AssertionAudience):
            raise ValueError(f"audience must be one of {', '.join(get_args(AssertionAudience))}")
        if not 0 < lifetime_seconds <= ASSERTION_LIFETIME_SECONDS:
            raise ValueError(f"lifetime_seconds must be between 1 and {ASSERTION_LIFETIME_SECONDS}")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    def __repr__(self) -> str:
        return f"ClientAssertionSigner(issuer={self.issuer!r}, audience={self.audience!r}, keys={self.keys!r})"

    def sign(self, client_id: str, token_endpoint: str) -> str:
        """A new assertion for `client_id` (RFC 7523 §3): unique `jti`, valid `lifetime_seconds` from now."""
        if self.audience != "issuer" and not token_endpoint:
            raise ValueError("the token endpoint URL is needed for this assertion audience")
        audience: str | list[str] = self.issuer
        if self.audience == "issuer_and_token_endpoint":
            audience = [self.issuer, token_endpoint]
        elif self.audience == "token_endpoint":
            audience = token_endpoint
        now = int(self._clock())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + self.lifetime_seconds,
        }
        key = self.keys.signing_key()
        headers = {"typ": "JWT", **({"kid": key.kid} if key.kid else {})}
        return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=headers)


def main(argv: list[str] | None = None) -> None:
    """`python -m oauth_tokens.client_assertion rotate|list|sign --keys-dir DIR`: a client's assertion keys.

    `sign` prints one assertion (valid 60 s) for --client-id at --issuer, e.g. to try a token request by hand.
    """
    parser = argparse.ArgumentParser(prog="python -m oauth_tokens.client_assertion", description=__doc__)
    parser.add_argument("command", choices=["rotate", "list", "sign"])
    parser.add_argument("--keys-dir", type=Path, required=True, help="e.g. data/crm-mcp/client-keys")
    parser.add_argument("--algorithm", choices=SIGNING_ALGORITHMS, default="ES256")
    parser.add_argument(
        "--publish-ahead",
        type=publish_ahead_argument,
        default=PUBLISH_AHEAD_SECONDS,
        metavar="SECONDS",
        help=f"rotate: publish the new key this long before it signs (default {PUBLISH_AHEAD_SECONDS}, "
        f"at least {JWKS_REFETCH_COOLDOWN_SECONDS})",
    )
    parser.add_argument("--client-id", help="sign: the client_id (iss and sub)")
    parser.add_argument("--issuer", help="sign: the authorization server's issuer (aud)")
    arguments = parser.parse_args(argv)
    if arguments.command == "sign":
        if not arguments.client_id or not arguments.issuer:
            parser.error("sign needs --client-id and --issuer")
        keys = KeyStore(arguments.keys_dir, ASSERTION_LIFETIME_SECONDS, algorithm=arguments.algorithm)
        print(ClientAssertionSigner(keys, arguments.issuer).sign(arguments.client_id, ""))  # never generates a key
        return
    store = client_keys(arguments.keys_dir, arguments.algorithm)
    if arguments.command == "rotate":
        record = store.rotate(arguments.publish_ahead)
        print(f"New client key {record.kid}: published now, signs from {when(record.activates_at or 0)}.")
    print(f"Published client keys in {store.directory}:\n{describe_keys(store)}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError, TypeError, ValueError) as error:  # one line; messages hold no key material
        sys.exit(f"oauth_tokens.client_assertion: {error}")
