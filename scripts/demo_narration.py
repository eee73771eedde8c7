"""What `make demo` prints and checks: a line of narration, a checked claim, a token described without itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp import Client
from mcp.types import TextContent
from oauth_tokens import AccessTokenValidator, Principal, ValidatorConfig


class DemoFailure(Exception):
    """Something the demo checks did not hold."""


def say(text: str = "") -> None:
    print(text, flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)
    say(f"    ✓ {what}")


def describe(principal: Principal) -> str:
    audiences = ", ".join(principal.audiences)
    scopes = " ".join(sorted(principal.scopes))
    actor = f" act.sub={principal.actor}" if principal.actor else ""
    cnf = principal.claims.get("cnf")
    bound = " DPoP-bound (cnf.jkt)" if isinstance(cnf, dict) and "jkt" in cnf else ""
    return f"sub={principal.subject} client={principal.client_id} aud=[{audiences}] scope={scopes}{actor}{bound}"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = " ".join(b.text for b in result.content if isinstance(b, TextContent))
        raise DemoFailure(f"{tool} failed: {text}")
    content = result.structured_content
    return content["result"] if isinstance(content, dict) and set(content) == {"result"} else content


async def validated(env: dict[str, str], token: str, audiences: Sequence[str]) -> Principal:
    """Check a token the way the services do (shared package, JWKS by discovery) and return its principal."""
    config = ValidatorConfig(issuers=[env["AUTH_ISSUER"]], audiences=list(audiences))
    async with AccessTokenValidator(config) as validator:
        return await validator.validate(token)


def narrate_dpop(env: dict[str, str]) -> None:
    """The closing DPoP summary, hop by hop (only under DPoP: crm-mcp took DPoP-bound tokens only)."""
    from scripts.demo_login import calendar_dpop

    calendar = calendar_dpop(env["CALENDAR_API_URL"])
    say("\nDPoP: every token of this demo was DPoP-bound (cnf.jkt) and sent with a fresh proof, hop by hop:")
    say("  MCP client → crm-mcp: alice's and bob's tokens, bound to their own clients' keys")
    say("  crm-mcp → tickets-mcp (pattern 2): crm-mcp's client-credentials token, bound to crm-mcp's key")
    say("  crm-mcp → crm-api (pattern 3b): the exchanged token, bound to crm-mcp's key")
    if calendar:
        say("  crm-mcp → calendar-api (pattern 4): alice's grant from the vault, bound to crm-mcp's key")
        say("  crm-mcp → calendar-api (pattern 5): the token the ID-JAG bought (jwt-bearer), bound to crm-mcp's key")
        say("  (the demo repeated pattern 5's hops above with a stand-in key: crm-mcp binds to its own in that mode)")
        say("  crm-mcp's key is kept in <CRM_MCP_DATA_DIR>/dpop-keys, one for every replica, like the vault it serves")
    else:
        say("  crm-mcp → calendar-api (patterns 4, 5): the calendar provider's choice; here it takes bearer tokens")
        say("  (CALENDAR_AUTH_DPOP=accept): make up DPOP=require binds those too")
    say("  weather-api (pattern 1) takes an API key, not a token: DPoP has nothing to bind there.")
    say("  Pattern 3 (cascade) cannot run this way: a DPoP-bound token cannot be forwarded (docs/dpop.md).")
