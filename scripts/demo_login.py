"""How `make demo` signs a user in: the MCP SDK's OAuth client, made to use DPoP when crm-mcp requires it.

Under `make up DPOP=require` crm-mcp answers bearer tokens with 401, so each demo user gets a DPoP key of
their own (in memory, for this run): DPoPOverAuth puts a proof on the SDK's token requests (the token comes
back bound to the key, `cnf.jkt`) and a fresh one on every MCP request. Otherwise the SDK runs unchanged.
"""

from __future__ import annotations

import functools

import httpx2
from oauth_tokens.dpop_client import DPoPKey, DPoPOverAuth

from scripts.dpop_switch import dpop_required
from scripts.headless_login import MemoryTokenStorage, user_oauth

_KEYS: dict[str, DPoPKey] = {}


@functools.cache
def demo_dpop(crm_mcp_url: str) -> bool:
    """Whether the demo's users need DPoP at crm-mcp (asked once per run)."""
    return dpop_required(crm_mcp_url)


@functools.cache
def calendar_dpop(calendar_api_url: str) -> bool:
    """Whether calendar-api takes DPoP-bound tokens only (CALENDAR_AUTH_DPOP=require; asked once per run)."""
    return dpop_required(calendar_api_url.rstrip("/") + "/events", "GET")


def user_key(username: str) -> DPoPKey:
    """`username`'s DPoP key for this run."""
    return _KEYS.setdefault(username, DPoPKey())


def demo_login(
    env: dict[str, str], username: str, *, scope: str | None = None
) -> tuple[httpx2.Auth, MemoryTokenStorage]:
    """An httpx2 auth logging `username` in to crm-mcp headlessly, with DPoP when crm-mcp requires it."""
    crm_mcp = env["CRM_MCP_RESOURCE"]
    provider, storage = user_oauth(crm_mcp, username, env[f"DEMO_{username.upper()}_PASSWORD"], scope=scope)
    if not demo_dpop(crm_mcp):
        return provider, storage
    return DPoPOverAuth(provider, user_key(username)), storage
