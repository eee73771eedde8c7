"""How `make demo` signs a user in: the MCP SDK's OAuth client, made to use DPoP when crm-mcp requires it.

Under `make up DPOP=require` crm-mcp answers bearer tokens with 401, so each demo user gets a DPoP key of
their own (in memory, for this run): DPoPOverAuth puts a proof on the SDK's token requests (the token comes
back bound to the key, `cnf.jkt`) and a fresh one on every MCP request. Otherwise the SDK runs unchanged.
"""

from __future__ import annotations

import functools
from contextlib import AbstractAsyncContextManager
from typing import Any

from devkit.sessions import OAuthSession, oauth_session
from oauth_tokens.dpop_client import DPoPKey

from scripts.dpop_switch import dpop_required

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


def demo_session(
    env: dict[str, str], username: str, *, scope: str | None = None, **options: Any
) -> AbstractAsyncContextManager[OAuthSession]:
    """`username` signed in to crm-mcp headlessly (devkit.sessions.oauth_session), with DPoP when crm-mcp
    requires it; `options` go on to oauth_session (`instrument`) and the SDK's Client (`elicitation_callback`)."""
    crm_mcp = env["CRM_MCP_RESOURCE"]
    password = env[f"DEMO_{username.upper()}_PASSWORD"]
    key = user_key(username) if demo_dpop(crm_mcp) else None
    return oauth_session(crm_mcp, username, password, scope=scope, dpop_key=key, **options)
