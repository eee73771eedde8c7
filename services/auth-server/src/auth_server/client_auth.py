"""private_key_jwt at the token endpoint: verify a client's signed assertion (RFC 7523 §2.2 and §3).

The request carries `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
`client_assertion=<JWT>` (and optionally `client_id`). The assertion is accepted only if, in this order:

1. the type is exactly that URN, and the assertion is one compact JWS;
2. its header `alg` is in ASSERTION_ALGORITHMS (never `none`, never HS*: a shared-key MAC would let
   anyone holding the public key forge one) and it names a `kid`;
3. `iss` = `sub` = the client_id (and = the `client_id` parameter, when sent), a client this server
   knows that authenticates with private_key_jwt;
4. the `kid` is one of the client's keys (its `jwks` from the config, or its `jwks_uri`), of a type
   fit for `alg`, and the signature verifies;
5. `aud` names this server's issuer (or its token endpoint URL); `exp` is present, not past and at most
   MAX_ASSERTION_LIFETIME_SECONDS ahead; `iat` (if present) not in the future; CLOCK_SKEW_SECONDS of
   leeway for each;
6. its `jti` has not been seen before from this client (ReplayCache, until the assertion expires).

Every refusal is the same `invalid_client` 401; the log line names the client and the check that
failed, never the assertion.

Key cache policy: the keys of each `jwks_uri` are a JWKSCache (oauth_tokens.jwks): fetched on first use
and kept JWKS_TTL_SECONDS; an unknown `kid` refetches, at most once per JWKS_REFETCH_COOLDOWN_SECONDS
(clients publish a new key at least that long before it signs); after a failed fetch the next waits
a few seconds. A configured client's jwks_uri is admin-trusted (any address, http allowed: in compose the
server reaches crm-mcp by its service name) and fetched with one deadline and a size cap; a metadata
document's jwks_uri goes through the same SSRF guard, deadline and size cap as the document itself
(document_fetch.py). At most `max_cached_documents` jwks_uri are cached; past that the oldest goes.
Nothing is fetched at start-up: the client need not be running when this server starts.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx2
import jwt
from oauth_tokens.discovery import fetch_json
from oauth_tokens.errors import KeySourceError, SigningKeyUnavailableError
from oauth_tokens.jwks import ALGORITHM_KEY_TYPES, JWKSCache
from oauth_tokens.replay_cache import ReplayCache, ReplayCacheFull

from auth_server.clients import Client, ClientFinder, UnusableClient
from auth_server.document_fetch import FetchPolicy, FetchRefused, fetch_document
from auth_server.errors import invalid_client

logger = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Advertised as token_endpoint_auth_signing_alg_values_supported; asymmetric only.
ASSERTION_ALGORITHMS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
MAX_ASSERTION_LIFETIME_SECONDS = 300
CLOCK_SKEW_SECONDS = 60
JWKS_TTL_SECONDS = 300
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384"}
_MAX_JTI_LENGTH = 256
_MAX_LOGGED_ID = 200


class AssertionRefused(Exception):
    """An assertion failed a check; the message names the check (for the log, never the client)."""


class ClientKeys:
    """The public keys of private_key_jwt clients, by client (see the module docstring for the policy)."""

    def __init__(self, fetch_policy: FetchPolicy, tls: ssl.SSLContext, *, max_cached: int = 1000) -> None:
        self._policy = fetch_policy
        self._tls = tls
        self._max_cached = max_cached
        self._caches: OrderedDict[tuple[str, bool], JWKSCache] = OrderedDict()

    def cache_for(self, client: Client) -> JWKSCache:
        """The client's key cache: its inline set, or its jwks_uri's (shared by clients naming the same)."""
        if client.jwks is not None:
            inline = dict(client.jwks)
            key = (f"inline:{client.client_id}", True)

            async def fetch_inline(_: str) -> dict[str, Any]:
                return inline

            fetch: Callable[[str], Awaitable[dict[str, Any]]] = fetch_inline
        else:
            assert client.jwks_uri is not None  # uses_assertion
            key = (client.jwks_uri, client.jwks_uri_trusted)
            fetch = self._fetch_trusted if client.jwks_uri_trusted else self._fetch_guarded
        cache = self._caches.get(key)
        if cache is None:
            cache = JWKSCache(
                key[0],
                None,
                fetch=fetch,
                allowed_algorithms=ASSERTION_ALGORITHMS,
                ttl_seconds=JWKS_TTL_SECONDS,
                timeout_seconds=self._policy.timeout_seconds,
            )
            self._caches[key] = cache
            while len(self._caches) > self._max_cached:
                self._caches.popitem(last=False)
        self._caches.move_to_end(key)
        return cache

    async def _fetch_trusted(self, url: str) -> dict[str, Any]:
        async with httpx2.AsyncClient(trust_env=False, follow_redirects=False, verify=self._tls) as http:
            return await fetch_json(http, url, timeout_seconds=self._policy.timeout_seconds)

    async def _fetch_guarded(self, url: str) -> dict[str, Any]:
        try:
            fetched = await fetch_document(url, self._policy, self._tls)
            document = json.loads(fetched.body)
        except FetchRefused as refused:
            raise KeySourceError(f"jwks_uri refused: {refused}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeySourceError("jwks_uri did not answer JSON") from None
        if not isinstance(document, dict):
            raise KeySourceError("jwks_uri did not answer a JSON object")
        return document


class ClientAssertionVerifier:
    """Authenticates token requests by client assertion for the server whose issuer is `issuer`."""

    def __init__(
        self,
        issuer: str,
        keys: ClientKeys,
        replay: ReplayCache,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audiences = (issuer, f"{issuer}/token")
        self._keys = keys
        self._replay = replay
        self._clock = clock

    async def authenticate(self, form: Mapping[str, str], find: ClientFinder) -> Client:
        """The client whose valid assertion `form` carries; else invalid_client, the failed check logged."""
        client_id = "?"
        try:
            claimed = self._claimed_client_id(form)
            client_id = claimed
            client = await self._client(claimed, find)
            claims = await self._verified_claims(form["client_assertion"], client)
            await self._check_replay(client_id, claims)
        except AssertionRefused as refused:
            logger.info("Client assertion refused (client %r): %s", client_id[:_MAX_LOGGED_ID], refused)
            raise invalid_client(self.issuer) from None
        return client

    @staticmethod
    def _claimed_client_id(form: Mapping[str, str]) -> str:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise AssertionRefused(f"client_assertion_type is not {CLIENT_ASSERTION_TYPE}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise AssertionRefused("no client_assertion")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise AssertionRefused("the client_assertion is not a JWT") from None
        issuer, subject = unverified.get("iss"), unverified.get("sub")
        if not isinstance(subject, str) or not subject or issuer != subject:
            raise AssertionRefused("iss and sub are not both the client_id")
        if form.get("client_id") not in (None, subject):
            raise AssertionRefused("the client_id parameter is not the assertion's sub")
        return subject

    async def _client(self, client_id: str, find: ClientFinder) -> Client:
        try:
            client = await find(client_id)
        except UnusableClient as unusable:
            raise AssertionRefused(f"client unusable: {unusable}") from None
        if client is None:
            raise AssertionRefused("unknown client")
        if not client.uses_assertion:
            raise AssertionRefused("the client does not authenticate with private_key_jwt")
        return client

    async def _verified_claims(self, assertion: str, client: Client) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            raise AssertionRefused("the client_assertion header is unreadable") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ASSERTION_ALGORITHMS:
            raise AssertionRefused(f"alg {str(algorithm)[:20]!r} is not allowed ({', '.join(ASSERTION_ALGORITHMS)})")
        if not isinstance(kid, str) or not kid:
            raise AssertionRefused("the header names no kid")
        try:
            key = await self._keys.cache_for(client).get_signing_key(kid)
        except SigningKeyUnavailableError as unavailable:
            raise AssertionRefused(f"kid: {unavailable}") from None
        if ALGORITHM_KEY_TYPES[algorithm] != key.key_type or key.algorithm not in (None, algorithm):
            raise AssertionRefused(f"key {kid!r} does not fit alg {algorithm}")
        if algorithm in _EC_CURVES and key.jwk_data.get("crv") != _EC_CURVES[algorithm]:
            raise AssertionRefused(f"key {kid!r} is not on the curve {algorithm} needs")
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key=key.for_algorithm(algorithm),
                algorithms=[algorithm],
                audience=list(self.audiences),
                issuer=client.client_id,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.InvalidTokenError as error:
            raise AssertionRefused(f"{type(error).__name__}: {error}") from None
        if claims["sub"] != client.client_id:
            raise AssertionRefused("sub is not the client_id")
        if float(claims["exp"]) > self._clock() + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
            raise AssertionRefused(f"exp is more than {MAX_ASSERTION_LIFETIME_SECONDS} s ahead")
        return claims

    async def _check_replay(self, client_id: str, claims: Mapping[str, Any]) -> None:
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
            raise AssertionRefused("jti is not a string of at most 256 characters")
        try:
            first = await self._replay.first_use(f"{client_id}\x00{jti}", float(claims["exp"]) + CLOCK_SKEW_SECONDS)
        except ReplayCacheFull:
            raise AssertionRefused("the replay cache is full of unexpired ids (fails closed)") from None
        if not first:
            raise AssertionRefused("jti already used (a replayed assertion)")
