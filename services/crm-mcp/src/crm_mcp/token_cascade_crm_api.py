"""Pattern 3 — token cascade: crm-mcp forwards the caller's own bearer token to crm-api.

crm-api sits inside the same trust boundary and validates the token itself (issuer, its own audience,
expiry, per-route scopes) against the authorization server's JWKS, then uses `sub` to decide what this
user may see. crm-mcp adds no credential of its own and cannot widen what the user may do.

This is a deliberate, bounded exception to a rule: the MCP specification says an MCP server MUST NOT
pass the token it received through to upstream APIs (a confused deputy). It holds here only because
crm-api is inside the same trust boundary, the authorization server puts crm-api's audience in tokens
for crm-mcp, and crm-api validates that audience itself. Anywhere else, exchange the token for one
issued for the downstream (RFC 8693, supported by the local auth server; see docs/token-cascade.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from mcp.server.auth.middleware.auth_context import get_access_token
from oauth_tokens.telemetry import trace_http
from pydantic import BaseModel, TypeAdapter

from crm_mcp.downstream import DownstreamError, http_client, parse_response, send

SERVICE = "crm-api"


class Note(BaseModel):
    """A note on a customer; crm-api records who wrote it from the token (`author` = sub)."""

    id: int | str
    text: str
    author: str
    created_at: str


class Customer(BaseModel):
    """A CRM customer, as crm-api returns it to the user the token names."""

    id: str
    name: str
    company: str
    city: str
    owner: str
    tier: str
    email: str | None = None
    notes: list[Note] = []


_customers = TypeAdapter(list[Customer])


def caller_authorization() -> dict[str, str]:
    """The Authorization header of the MCP request being served: the user's token, forwarded as is."""
    access_token = get_access_token()
    if access_token is None:
        # The SDK's bearer middleware admits no unauthenticated request; this is a programming error.
        raise DownstreamError("No caller token to forward to crm-api.")
    return {"Authorization": f"Bearer {access_token.token}"}


class CrmApiClient:
    """Calls crm-api as the user: every request carries the caller's token and nothing else."""

    def __init__(self, base_url: str, *, timeout_seconds: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = trace_http(http_client(timeout_seconds), pattern="token_cascade", credential="user_token")

    async def search_customers(self, query: str) -> list[Customer]:
        response = await send(
            SERVICE,
            lambda: self._http.get(f"{self._base_url}/customers", params={"q": query}, headers=caller_authorization()),
            idempotent=True,
        )
        return parse_response(SERVICE, lambda: _customers.validate_python(_json(response.json())))

    async def get_customer(self, customer_id: str) -> Customer:
        response = await send(
            SERVICE,
            lambda: self._http.get(
                f"{self._base_url}/customers/{quote(customer_id, safe='')}", headers=caller_authorization()
            ),
            idempotent=True,
        )
        return parse_response(SERVICE, lambda: Customer.model_validate(response.json()))

    async def add_note(self, customer_id: str, note: str) -> Customer:
        response = await send(
            SERVICE,
            lambda: self._http.post(
                f"{self._base_url}/customers/{quote(customer_id, safe='')}/notes",
                json={"text": note},
                headers=caller_authorization(),
            ),
            idempotent=False,
        )
        return parse_response(SERVICE, lambda: Customer.model_validate(response.json()))

    async def aclose(self) -> None:
        await self._http.aclose()


def _json(payload: Any) -> Any:
    """crm-api answers a search with a list, or with {"customers": [...]}; accept both."""
    return payload["customers"] if isinstance(payload, dict) and "customers" in payload else payload
