"""Enterprise-managed cross-app access (SEP-990), client side: the user's identity → an ID-JAG → an access token.

Two token requests, each through a `TokenEndpoint` (so each authenticates the way that endpoint's client is
configured, ends within its deadline, and never puts a secret in an error):

1. `request_id_jag` — RFC 8693 token exchange at the enterprise IdP: the user's identity (`subject_token`:
   an ID token, or the user's access token where the IdP takes that) for an ID-JAG
   (`requested_token_type=urn:ietf:params:oauth:token-type:id-jag`) naming the resource's authorization
   server (`audience`, its issuer) and the resource (`resource`). The answer's `token_type` is `N_A`.
2. `redeem_id_jag` — RFC 7523 jwt-bearer grant at that authorization server: the ID-JAG as `assertion`;
   the answer is an ordinary Bearer access token, with no browser step.

`CrossAppAccess` does both for one IdP client, one resource authorization server client and one resource.
It keeps nothing: callers cache what they get (an ID-JAG is single-use at the other end anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oauth_tokens.errors import TokenEndpointError
from oauth_tokens.token_endpoint import TokenEndpoint, TokenResponse

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "GRANT_JWT_BEARER",
    "ID_JAG_TOKEN_TYPE",
    "ID_TOKEN_TYPE",
    "CrossAppAccess",
    "IdJag",
    "redeem_id_jag",
    "request_id_jag",
]

GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant name
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"  # noqa: S105 - a token type name
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a token type name
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a token type name


@dataclass(frozen=True)
class IdJag:
    """An ID-JAG from the IdP and how long it is valid (seconds, from `expires_in` or the endpoint's default)."""

    assertion: str = field(repr=False)
    lifetime: float


async def request_id_jag(
    idp: TokenEndpoint,
    subject_token: str,
    *,
    audience: str,
    resource: str,
    scope: str | None = None,
    subject_token_type: str = ACCESS_TOKEN_TYPE,
) -> IdJag:
    """Step 1 at the IdP's token endpoint; TokenEndpointError if refused or if the answer is not an ID-JAG."""
    form = {
        "grant_type": GRANT_TOKEN_EXCHANGE,
        "requested_token_type": ID_JAG_TOKEN_TYPE,
        "subject_token": subject_token,
        "subject_token_type": subject_token_type,
        "audience": audience,
        "resource": resource,
    }
    if scope:
        form["scope"] = scope
    answer = await idp.request(form, secrets=(subject_token,), expected_type="N_A")
    if answer.body.get("issued_token_type") != ID_JAG_TOKEN_TYPE:
        raise TokenEndpointError("invalid_response", "The identity provider did not issue an ID-JAG", 200)
    return IdJag(answer.access_token, answer.lifetime)


async def redeem_id_jag(
    authorization_server: TokenEndpoint, id_jag: IdJag, *, scope: str | None = None
) -> TokenResponse:
    """Step 2 at the resource's authorization server: the access token the ID-JAG grants."""
    form = {"grant_type": GRANT_JWT_BEARER, "assertion": id_jag.assertion}
    if scope:
        form["scope"] = scope
    return await authorization_server.request(form, secrets=(id_jag.assertion,))


class CrossAppAccess:
    """Both steps for one resource: `idp` is this client at the enterprise IdP, `authorization_server` this
    client at the resource's authorization server (whose issuer is `audience`)."""

    def __init__(
        self,
        idp: TokenEndpoint,
        authorization_server: TokenEndpoint,
        *,
        audience: str,
        resource: str,
        scope: str | None = None,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
    ) -> None:
        self.idp = idp
        self.authorization_server = authorization_server
        self.audience = audience
        self.resource = resource
        self.scope = scope
        self.subject_token_type = subject_token_type

    def __repr__(self) -> str:
        return f"CrossAppAccess(audience={self.audience!r}, resource={self.resource!r})"

    async def id_jag(self, subject_token: str) -> IdJag:
        """Step 1 alone (the IdP's half)."""
        return await request_id_jag(
            self.idp,
            subject_token,
            audience=self.audience,
            resource=self.resource,
            scope=self.scope,
            subject_token_type=self.subject_token_type,
        )

    async def access_token(self, subject_token: str) -> TokenResponse:
        """Both steps: the user's identity in, an access token for `resource` out. TokenEndpointError if either
        refuses; callers that must tell the IdP's refusal from the authorization server's call `id_jag`, then
        `redeem_id_jag`, themselves (as crm-mcp does)."""
        return await redeem_id_jag(self.authorization_server, await self.id_jag(subject_token), scope=self.scope)

    async def aclose(self) -> None:
        await self.idp.aclose()
        await self.authorization_server.aclose()
