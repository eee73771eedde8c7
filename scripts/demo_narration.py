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
