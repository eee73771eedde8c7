"""`make up DPOP=accept|require`: one switch for the DPoP settings of every service (docs/dpop.md).

DPOP=require: every token of the demo is DPoP-bound. The resource servers of the trust boundary take only
DPoP-bound tokens (AUTH_DPOP=require), crm-mcp binds its own tokens, the calendar's of patterns 4 and 5
included (CRM_MCP_DPOP=true), the calendar's side takes and issues bound tokens only
(CALENDAR_AUTH_DPOP=require, CALENDAR_AUTH_SERVER_DPOP=require: in this topology it is a stand-in whose
settings make up sets too), and crm-mcp reaches crm-api by token exchange (CRM_API_AUTH_MODE=exchange):
pattern 3 cannot forward a bound token, by design. Each stays as given when given.
DPOP=accept: bearer clients keep working; crm-mcp's own tokens are bound. Empty: the settings as .env has them.
The auth-server stays `accept` (it binds whenever a proof comes; crm-mcp's sign-in and ID-JAG requests
are no access tokens for a resource and carry no proof).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx2

DPOP_VALUES = ("", "accept", "require")


def dpop_problem(env: Mapping[str, str]) -> str | None:
    """Why the DPOP switch cannot be applied (its name, never a secret); None when it can."""
    if env.get("DPOP", "").strip() not in DPOP_VALUES:
        return "Invalid setting DPOP: use accept or require (or leave it empty)"
    return None


def apply_dpop_switch(env: dict[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """`env` with the settings DPOP stands for; `given` (the process environment) still wins for each."""
    switch = env.get("DPOP", "").strip()
    if switch not in ("accept", "require"):
        return env
    derived = {"CRM_MCP_DPOP": "true", "AUTH_DPOP": switch}
    if switch == "require":
        derived |= {
            "CRM_API_AUTH_MODE": "exchange",
            "CALENDAR_AUTH_DPOP": "require",
            "CALENDAR_AUTH_SERVER_DPOP": "require",
        }
    return {**env, **{name: value for name, value in derived.items() if name not in given}}


def dpop_required(url: str, method: str = "POST") -> bool:
    """Whether the resource at `url` (crm-mcp's MCP endpoint; calendar-api's /events with GET) takes only
    DPoP-bound tokens: its challenge to an anonymous request offers DPoP alone."""
    try:
        response = httpx2.request(method, url, json={} if method == "POST" else None, timeout=5)
    except httpx2.HTTPError:
        return False
    schemes = {challenge.split(" ")[0].lower() for challenge in response.headers.get_list("WWW-Authenticate")}
    return response.status_code == 401 and schemes == {"dpop"}
