"""Pattern 5 end to end: enterprise-managed cross-app access (SEP-990) to the user's calendar, no browser step.

Real parts only: the topology's auth-server (the enterprise IdP), calendar-auth-server and calendar-api, and
crm-mcp processes started beside the topology's with CALENDAR_AUTH_MODE=cross-app-access (the topology's own
crm-mcp stays in pattern 4's consent mode). The user's token comes from the real OAuth flow; the MCP session
is the official SDK client's. The refusal tests start what they need beside it: a crm-mcp asking the IdP
for more than its policy allows, and a calendar authorization server (same issuer, own port and config)
that maps alice but not bob.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from devkit.processes import ServiceProcess
from devkit.services import CALENDAR_AUTH_SERVER_CONFIG
from devkit.sessions import mcp_session
from mcp.types import CallToolResult, ElicitResult

from tests.integration.conftest import Topology
from tests.support.crm_mcp_state import crm_mcp_vault

pytestmark = pytest.mark.anyio


def text_of(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


class NoElicitation:
    """An elicitation callback that records any elicitation: pattern 5 must never ask the user."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.asked.append(params)
        return ElicitResult(action="decline")


@pytest.fixture
def start(topology: Topology, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start services beside the topology (stopped after the test): `start(name, of="crm-mcp", **env)`."""
    with ExitStack() as started:

        def starter(name: str, of: str = "crm-mcp", **overrides: str) -> ServiceProcess:
            return started.enter_context(topology.extra(name, of, workdir=tmp_path / name, **overrides))

        yield starter


def cross_app_crm_mcp(
    start: Callable[..., ServiceProcess], topology: Topology, tmp_path: Path, **overrides: str
) -> ServiceProcess:
    """A crm-mcp in cross-app mode with its own data directory, otherwise configured as the topology's.

    Like a replica, it holds the topology crm-mcp's client keys: the authorization servers know crm-mcp
    by the keys published at CRM_MCP_JWKS_URI (private_key_jwt), not by a process.
    """
    data_dir = tmp_path / "crm-mcp-cross-app-data"
    keys = Path(topology.env["CRM_MCP_DATA_DIR"]) / "client-keys"
    shutil.copytree(keys, data_dir / "client-keys", dirs_exist_ok=True)
    return start(
        f"crm-mcp-cross-app-{len(overrides)}",
        CALENDAR_AUTH_MODE="cross-app-access",
        CRM_MCP_DATA_DIR=str(data_dir),
        **overrides,
    )


def meeting_args(title: str) -> dict[str, Any]:
    return {"customer_id": "cus_001", "start": "2026-12-02T09:00:00+00:00", "minutes": 30, "title": title}


async def test_pattern_5_reaches_the_users_calendar_without_any_browser_step(
    topology: Topology, start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    crm_mcp = cross_app_crm_mcp(start, topology, tmp_path)
    alice_token = await topology.user_token("alice")
    issued_before = topology.services["auth-server"].logs().count("Issued ID-JAG: client=crm-mcp-agent sub=alice")
    alice = NoElicitation()

    async with mcp_session(f"{crm_mcp.url}/mcp", token=alice_token, elicitation_callback=alice) as client:
        scheduled = await client.call_tool("schedule_meeting", meeting_args("Cross-app renewal"))
        listed = await client.call_tool("list_my_meetings", {})

    assert not scheduled.is_error, text_of(scheduled)
    assert not listed.is_error, text_of(listed)
    assert alice.asked == []  # no URL elicitation, no consent page
    assert scheduled.structured_content is not None
    assert scheduled.structured_content["attendees"] == ["greta@vogel.example"]
    assert "Cross-app renewal" in text_of(listed)
    # One ID-JAG for both calls: the calendar token is cached per user.
    issued = topology.services["auth-server"].logs().count("Issued ID-JAG: client=crm-mcp-agent sub=alice")
    assert issued == issued_before + 1
    assert "grant=jwt_bearer client=crm-mcp sub=alice" in topology.services["calendar-auth-server"].logs()
    # Nothing went to the vault: pattern 5 keeps no grant.
    env = {**topology.env, "CRM_MCP_DATA_DIR": str(tmp_path / "crm-mcp-cross-app-data")}
    async with crm_mcp_vault(env) as vault:
        assert await vault.get("alice", env["CALENDAR_AUTH_ISSUER"]) is None

    bob = NoElicitation()
    async with mcp_session(
        f"{crm_mcp.url}/mcp", token=await topology.user_token("bob"), elicitation_callback=bob
    ) as client:
        bobs = await client.call_tool("list_my_meetings", {})
    assert not bobs.is_error, text_of(bobs)
    assert "Cross-app renewal" not in text_of(bobs)  # bob's own calendar account, mapped from his IdP sub
    assert bob.asked == []


async def test_a_refused_policy_is_a_tool_error_naming_what_to_ask_the_administrator(
    topology: Topology, start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    # The IdP's policy allows crm-mcp-agent calendar:read and calendar:write only.
    crm_mcp = cross_app_crm_mcp(start, topology, tmp_path, CALENDAR_SCOPES="calendar:read calendar:delete")

    async with mcp_session(
        f"{crm_mcp.url}/mcp", token=await topology.user_token("alice"), elicitation_callback=NoElicitation()
    ) as client:
        result = await client.call_tool("list_my_meetings", {})

    assert result.is_error
    message = text_of(result)
    assert "identity provider does not allow crm-mcp" in message
    assert "invalid_scope" in message
    assert f"Ask your administrator to allow the client {topology.env['CRM_MCP_CLIENT_ID']} ID-JAGs" in message


async def test_a_user_the_calendar_does_not_map_gets_a_tool_error(
    topology: Topology, start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    config = tmp_path / "calendar-alice-only.toml"
    shipped = CALENDAR_AUTH_SERVER_CONFIG.read_text(encoding="utf-8")
    config.write_text(shipped.replace('subjects = { alice = "alice", bob = "bob" }', 'subjects = { alice = "alice" }'))
    assert config.read_text() != shipped
    # The calendar's authorization server again (same issuer and keys), with bob unmapped.
    # (With the calendar's signing keys, its data directory's, so calendar-api accepts what it issues to alice.)
    calendar_as = start("calendar-auth-server-alice-only", "calendar-auth-server", AUTH_SERVER_CONFIG=str(config))
    crm_mcp = cross_app_crm_mcp(start, topology, tmp_path, CALENDAR_TOKEN_URL=f"{calendar_as.url}/token")

    async with mcp_session(
        f"{crm_mcp.url}/mcp", token=await topology.user_token("bob"), elicitation_callback=NoElicitation()
    ) as client:
        refused = await client.call_tool("list_my_meetings", {})
    async with mcp_session(
        f"{crm_mcp.url}/mcp", token=await topology.user_token("alice"), elicitation_callback=NoElicitation()
    ) as client:
        allowed = await client.call_tool("list_my_meetings", {})

    assert refused.is_error
    assert "Ask your administrator to map your account (bob)" in text_of(refused)
    assert "no account mapping" in text_of(refused)
    assert not allowed.is_error, text_of(allowed)
    for seen in (text_of(refused), calendar_as.logs()):
        assert "eyJ" not in seen  # no assertion or token in the error or the log


async def test_concurrent_calls_of_one_user_share_one_id_jag(
    topology: Topology, start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    crm_mcp = cross_app_crm_mcp(start, topology, tmp_path)
    bob_token = await topology.user_token("bob")
    idp = topology.services["auth-server"]
    before = idp.logs().count("Issued ID-JAG: client=crm-mcp-agent sub=bob")
    results: list[CallToolResult] = []

    async with mcp_session(f"{crm_mcp.url}/mcp", token=bob_token, elicitation_callback=NoElicitation()) as client:

        async def one_call() -> None:
            results.append(await client.call_tool("list_my_meetings", {}))

        async with anyio.create_task_group() as calls:
            for _ in range(5):
                calls.start_soon(one_call)

    assert [result.is_error for result in results] == [False] * 5
    # This crm-mcp had no token for bob: the five calls waited for one exchange (single flight per user).
    assert idp.logs().count("Issued ID-JAG: client=crm-mcp-agent sub=bob") == before + 1
