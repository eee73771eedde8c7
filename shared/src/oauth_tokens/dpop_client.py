"""The client half of DPoP (RFC 9449): a key, proofs signed with it, and an httpx2.Auth that presents a bound token.

`DPoPKey` holds a private key (ES256 by default, generated in memory) and signs one proof per request
with PyJWT: header `typ` dpop+jwt, `alg`, the public `jwk`; claims `jti` (random), `htm`, `htu` (the URL
without query or fragment), `iat`, and `ath` (the token's hash) when a token goes with it, `nonce` when the
server asked for one. Servers' nonces are remembered per origin (`DPoPNonceStore`), so one
`use_dpop_nonce` answer costs one retry, not one per request.

`DPoPTokenAuth` sends `Authorization: DPoP <token>` and a fresh `DPoP` proof on every request; given a
token that is not DPoP-bound (token_type Bearer) it sends it as Bearer, unchanged.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any
from urllib.parse import urlsplit

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from oauth_tokens.dpop import access_token_hash, jwk_thumbprint, normalized_htu

__all__ = ["DPoPKey", "DPoPNonceStore", "DPoPTokenAuth", "nonce_challenge"]


class DPoPKey:
    """A DPoP key pair: signs proofs; `thumbprint` is the `jkt` a server binds tokens to."""

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
        *,
        algorithm: str = "ES256",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._private_key = private_key if private_key is not None else ec.generate_private_key(ec.SECP256R1())
        public = self._private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(public))
        else:
            jwk = json.loads(ECAlgorithm.to_jwk(public))
        self.public_jwk: dict[str, Any] = {
            name: jwk[name] for name in ("kty", "crv", "x", "y", "n", "e") if name in jwk
        }
        self.algorithm = algorithm
        self.thumbprint = jwk_thumbprint(self.public_jwk)
        self._headers = {"typ": "dpop+jwt", "jwk": self.public_jwk}
        self._clock = clock

    def __repr__(self) -> str:
        return f"DPoPKey(algorithm={self.algorithm!r}, thumbprint={self.thumbprint!r})"

    def proof(self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None) -> str:
        """A new proof for one request: `method` and `url` (its query and fragment are left out)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": normalized_htu(url),
            "iat": int(self._clock()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(claims, self._private_key, algorithm=self.algorithm, headers=self._headers)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class DPoPNonceStore:
    """The last `DPoP-Nonce` each origin sent (RFC 9449 §8.2: the client uses it until told otherwise)."""

    def __init__(self) -> None:
        self._nonces: dict[str, str] = {}

    def get(self, url: str) -> str | None:
        return self._nonces.get(_origin(url))

    def remember(self, url: str, response: httpx2.Response) -> bool:
        """Keep the response's DPoP-Nonce; True when it is new (a retry with it may succeed)."""
        nonce = response.headers.get("DPoP-Nonce")
        if not nonce or len(nonce) > 512:
            return False
        origin = _origin(url)
        changed = self._nonces.get(origin) != nonce
        self._nonces[origin] = nonce
        return changed


def nonce_challenge(response: httpx2.Response) -> bool:
    """True when `response` asks for a (new) server nonce: a 401 challenge or a 400 token error `use_dpop_nonce`."""
    if response.status_code == 401:
        return "use_dpop_nonce" in response.headers.get("WWW-Authenticate", "")
    if response.status_code == 400 and "DPoP-Nonce" in response.headers:
        try:
            body = json.loads(response.content)
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("error") == "use_dpop_nonce"
    return False


class DPoPTokenAuth(httpx2.Auth):
    """`Authorization: DPoP <token>` plus a fresh proof per request; one retry when the server asks for a nonce.

    `token_type` is what the token endpoint answered: DPoP binds it, Bearer sends it as a bearer token."""

    requires_request_body = True

    def __init__(
        self,
        key: DPoPKey,
        access_token: str,
        token_type: str = "DPoP",  # noqa: S107 - a type name
        nonces: DPoPNonceStore | None = None,
    ) -> None:
        self.key = key
        self._access_token = access_token
        self.bound = token_type.lower() == "dpop"
        self.nonces = nonces if nonces is not None else DPoPNonceStore()

    def __repr__(self) -> str:
        return f"DPoPTokenAuth(key={self.key!r}, bound={self.bound})"

    def authorize(self, request: httpx2.Request) -> None:
        """Set the Authorization and DPoP headers of `request` (a new proof each time)."""
        if not self.bound:
            request.headers["Authorization"] = f"Bearer {self._access_token}"
            return
        url = str(request.url)
        request.headers["Authorization"] = f"DPoP {self._access_token}"
        request.headers["DPoP"] = self.key.proof(
            request.method, url, access_token=self._access_token, nonce=self.nonces.get(url)
        )

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        self.authorize(request)
        response = yield request
        if self.bound and nonce_challenge(response) and self.nonces.remember(str(request.url), response):
            self.authorize(request)
            yield request

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        self.authorize(request)
        response = yield request
        if self.bound and nonce_challenge(response) and self.nonces.remember(str(request.url), response):
            self.authorize(request)
            yield request
