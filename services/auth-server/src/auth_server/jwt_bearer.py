"""Pattern 5, the resource authorization server half: redeem an ID-JAG with the RFC 7523 jwt-bearer grant.

The client (authenticated at the token endpoint as usual) presents `assertion`, an ID-JAG an enterprise IdP
issued for it (id_jag.py on that side). This server trusts only the IdPs its config lists
(`[[trusted_identity_providers]]`: issuer and JWKS URL) and checks, in order: the JOSE `typ`
(oauth-id-jag+jwt), the issuer, `alg` from that IdP's list, the signature with that IdP's key, `aud` = this
server's issuer, `exp` / `iat` (30 s leeway, lifetime bounded), `client_id` = the authenticated client, the
IdP's `sub` mapped to a user of this server (no mapping: refused), `resource` and `scope` within what the
client may have, and last the `jti`, used once (`ReplayCache`). Then it issues an access token for the mapped
user, without any browser step and without a refresh token: the client asks its IdP for a new ID-JAG.
Every refusal is `invalid_grant` (or 503 `temporarily_unavailable` when the IdP's keys cannot be fetched),
logged with the check that failed, never with the assertion.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
import jwt
from oauth_tokens.errors import InvalidTokenError, KeySourceUnavailableError, SigningKeyUnavailableError
from oauth_tokens.jwks import JWKSCache
from oauth_tokens.replay_cache import InMemoryReplayCache, ReplayCache, ReplayCacheFull

from auth_server.clients import Client
from auth_server.config_sections import TrustedIdentityProvider
from auth_server.errors import OAuthError
from auth_server.id_jag import ID_JAG_TYP
from auth_server.policy import allowed_scopes, audiences_of, parse_scope, select_resource, select_scopes

if TYPE_CHECKING:
    from auth_server.state import AuthServer
    from auth_server.token import TokenRequest

logger = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
MAX_ASSERTION_BYTES = 8192
_ACCEPTED_TYPS = frozenset({ID_JAG_TYP, f"application/{ID_JAG_TYP}"})
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]


class Refused(Exception):
    """One check failed; the message names it (for the log), never the assertion's content."""


@dataclass(frozen=True)
class _Provider:
    config: TrustedIdentityProvider
    keys: JWKSCache


@dataclass(frozen=True)
class VerifiedIdJag:
    """What a checked ID-JAG grants: this server's user, and the resource and scope it names (if any)."""

    username: str
    resource: str | None
    scope: str | None


class IdJagVerifier:
    """The IdPs this server trusts, their keys (cached, oauth_tokens.jwks policy), and the `jti`s seen."""

    def __init__(self, providers: Iterable[TrustedIdentityProvider], replays: ReplayCache | None = None) -> None:
        trusted = tuple(providers)
        self._http = httpx2.AsyncClient(timeout=5.0, follow_redirects=False)
        self._providers = {
            idp.issuer: _Provider(idp, JWKSCache(idp.jwks_uri, self._http, allowed_algorithms=idp.algorithms))
            for idp in trusted
        }
        capacity = max(sum(idp.max_remembered_ids for idp in trusted), 1)
        self._replays = replays if replays is not None else InMemoryReplayCache(capacity)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def verify(self, assertion: str, *, issuer: str, client_id: str) -> VerifiedIdJag:
        """The checked grant; raises Refused naming the failed check (see the module docstring)."""
        if len(assertion.encode()) > MAX_ASSERTION_BYTES:
            raise Refused("the assertion is too large")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except (InvalidTokenError, jwt.InvalidTokenError):
            raise Refused("the assertion is not a JWT") from None
        if str(header.get("typ", "")).lower() not in _ACCEPTED_TYPS:
            raise Refused(f"typ is not {ID_JAG_TYP}")
        provider = self._providers.get(str(unverified.get("iss", "")))
        if provider is None:
            raise Refused("the issuer is not a trusted identity provider")
        claims = await self._verified_claims(assertion, header, provider, issuer)
        if claims["exp"] - claims["iat"] > provider.config.max_lifetime_seconds:
            raise Refused("the assertion is valid for too long")
        if claims["client_id"] != client_id:
            raise Refused("client_id is not the authenticated client")
        username = provider.config.subjects.get(str(claims["sub"]))
        if username is None:
            raise Refused("the subject has no account mapping here")
        resource, scope = claims.get("resource"), claims.get("scope")
        verified = VerifiedIdJag(username, resource if isinstance(resource, str) else None, _scope_of(scope))
        try:
            first = await self._replays.first_use(f"{provider.config.issuer} {claims['jti']}", float(claims["exp"]))
        except ReplayCacheFull:
            raise OAuthError(
                "temporarily_unavailable", "Too many assertions in flight; retry later", status_code=503
            ) from None
        if not first:
            raise Refused("the jti was already used (replay)")
        return verified

    async def _verified_claims(
        self, assertion: str, header: dict[str, Any], provider: _Provider, issuer: str
    ) -> dict[str, Any]:
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in provider.config.algorithms:
            raise Refused("alg is not one this identity provider is trusted with")
        if not isinstance(kid, str) or not kid:
            raise Refused("the header has no kid")
        try:
            key = await provider.keys.get_signing_key(kid)
        except KeySourceUnavailableError:
            logger.warning("ID-JAG refused: the keys of %s cannot be fetched", provider.config.issuer)
            raise OAuthError(
                "temporarily_unavailable", "The identity provider's keys are unavailable; retry later", status_code=503
            ) from None
        except SigningKeyUnavailableError:
            raise Refused("the signing key is not one of the identity provider's") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key.for_algorithm(str(algorithm)),
                algorithms=[str(algorithm)],
                issuer=provider.config.issuer,
                audience=[issuer, f"{issuer}/"],
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as error:
            raise Refused(f"invalid ({type(error).__name__})") from None
        if not isinstance(claims["jti"], str) or not isinstance(claims["client_id"], str):
            raise Refused("jti and client_id must be strings")
        return claims


def _scope_of(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def jwt_bearer_grant(server: AuthServer, client: Client, request: TokenRequest) -> dict[str, Any]:
    """RFC 7523 §2.1 with an ID-JAG: an access token for the user the IdP vouches for."""
    try:
        grant = await server.id_jags.verify(
            request.require("assertion"), issuer=server.issuer, client_id=client.client_id
        )
    except Refused as refused:
        logger.info("jwt-bearer: the ID-JAG from client %s is refused: %s", client.client_id, refused)
        raise OAuthError("invalid_grant", f"The ID-JAG is refused: {refused}") from None
    resource = select_resource(server.config, client, [grant.resource] if grant.resource else [])
    allowed = allowed_scopes(server.config, client, resource)
    granted = select_scopes(grant.scope, allowed)  # what the IdP granted, if this client may have it here
    requested = parse_scope(request.get("scope"))
    if requested is not None and not set(requested) <= set(granted):
        raise OAuthError("invalid_scope", "The requested scope exceeds the ID-JAG's")
    scopes = requested or granted
    issued = server.access_tokens.issue(
        subject=grant.username,
        client_id=client.client_id,
        audiences=audiences_of(server.config, resource),
        scopes=scopes,
        jkt=request.dpop_jkt,
    )
    logger.info(
        "Issued token: grant=jwt_bearer client=%s sub=%s resource=%s", client.client_id, grant.username, resource
    )
    return {
        "access_token": issued.token,
        "token_type": "DPoP" if issued.jkt else "Bearer",
        "expires_in": issued.expires_in,
        "scope": " ".join(issued.scopes),
    }
