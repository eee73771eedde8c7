"""The client half of DPoP (RFC 9449): a key, proofs signed with it, and an httpx2.Auth that presents a bound token.

`DPoPKey` holds a private key (ES256 by default, generated in memory) and signs one proof per request
with PyJWT: header `typ` dpop+jwt, `alg`, the public `jwk`; claims `jti` (random), `htm`, `htu` (the URL
without query or fragment), `iat`, and `ath` (the token's hash) when a token goes with it, `nonce` when the
server asked for one. Servers' nonces are remembered per origin (`DPoPNonceStore`), so one
`use_dpop_nonce` answer costs one retry, not one per request.

`DPoPOverAuth` wraps another client's auth flow (the MCP SDK's OAuthClientProvider: discovery, registration,
PKCE, refresh) so the tokens it obtains are DPoP-bound and presented with proofs, without changing it.

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

from oauth_tokens.dpop import access_token_hash, bound_thumbprint, jwk_thumbprint, normalized_htu

__all__ = [
    "DPoPKey",
    "DPoPNonceStore",
    "DPoPOverAuth",
    "DPoPProofAuth",
    "DPoPTokenAuth",
    "add_proof",
    "nonce_challenge",
]


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


def add_proof(request: httpx2.Request, key: DPoPKey, nonces: DPoPNonceStore) -> bool:
    """Give `request` a fresh proof if its Authorization uses the DPoP scheme; False (untouched) otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "dpop" or not token:
        return False
    url = str(request.url)
    request.headers["DPoP"] = key.proof(request.method, url, access_token=token, nonce=nonces.get(url))
    return True


class DPoPProofAuth(httpx2.Auth):
    """For a client whose callers set `Authorization: DPoP <token>` themselves: a fresh proof on every
    request (a retry included, so no proof is ever sent twice), and one retry when asked for a nonce."""

    requires_request_body = True

    def __init__(self, key: DPoPKey, nonces: DPoPNonceStore | None = None) -> None:
        self.key = key
        self.nonces = nonces if nonces is not None else DPoPNonceStore()

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        proved = add_proof(request, self.key, self.nonces)
        response = yield request
        if proved and nonce_challenge(response) and self.nonces.remember(str(request.url), response):
            add_proof(request, self.key, self.nonces)
            yield request


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


def _is_token_request(request: httpx2.Request) -> bool:
    content_type = request.headers.get("Content-Type", "")
    return (
        request.method == "POST"
        and content_type.startswith("application/x-www-form-urlencoded")
        and b"grant_type=" in request.content
    )


def _as_bearer_answer(response: httpx2.Response, bound: list[str]) -> httpx2.Response:
    """A token response saying `token_type: DPoP`, re-labelled Bearer for a client that knows no other type;
    its access token is added to `bound` (the last 8 kept)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return response
    if not isinstance(body, dict) or str(body.get("token_type", "")).lower() != "dpop":
        return response
    if isinstance(body.get("access_token"), str):
        bound[:] = [*bound[-7:], body["access_token"]]
    body["token_type"] = "Bearer"  # noqa: S105 - a type name
    skipped = {"content-length", "content-encoding", "transfer-encoding"}
    headers = [(name, value) for name, value in response.headers.multi_items() if name.lower() not in skipped]
    return httpx2.Response(
        response.status_code, headers=headers, content=json.dumps(body).encode(), request=response.request
    )


class DPoPOverAuth(httpx2.Auth):
    """Another auth flow, made to use DPoP with `key` (see the module docstring).

    Its token requests carry a proof (so the server binds what it issues to `key`); a `token_type: DPoP`
    answer reaches it as Bearer (the MCP SDK accepts no other); a request it authorises with a token bound to
    `key` leaves as `Authorization: DPoP` with a fresh proof. A `use_dpop_nonce` answer gets one retry."""

    requires_request_body = True
    requires_response_body = True

    def __init__(self, inner: httpx2.Auth, key: DPoPKey, nonces: DPoPNonceStore | None = None) -> None:
        self.inner = inner
        self.key = key
        self.nonces = nonces if nonces is not None else DPoPNonceStore()
        # Tokens answered with token_type DPoP (an opaque token names no cnf.jkt); the last few only.
        self._bound: list[str] = []

    def _prepare(self, request: httpx2.Request) -> str | None:
        """Add this request's proof: "token" for a token request, "resource" for a bound token's use."""
        url = str(request.url)
        if _is_token_request(request):
            request.headers["DPoP"] = self.key.proof(request.method, url, nonce=self.nonces.get(url))
            return "token"
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        bound = token in self._bound or bound_thumbprint(token) == self.key.thumbprint
        if scheme.lower() in ("bearer", "dpop") and token and bound:
            request.headers["Authorization"] = f"DPoP {token}"
            return "resource" if add_proof(request, self.key, self.nonces) else None
        return None

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        flow = self.inner.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
        except StopAsyncIteration:
            return
        while True:
            kind = self._prepare(outgoing)
            response = yield outgoing
            if kind == "token":
                await response.aread()  # a token answer is small; its error or token_type is read below
            if kind is not None and nonce_challenge(response) and self.nonces.remember(str(outgoing.url), response):
                self._prepare(outgoing)
                response = yield outgoing
                if kind == "token":
                    await response.aread()
            if kind == "token":
                response = _as_bearer_answer(response, self._bound)
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return
