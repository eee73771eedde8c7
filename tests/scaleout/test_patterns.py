"""Patterns 1, 2, 3 and 4 through the load balancer, spread over crm-mcp's replicas, each user's data kept apart.

The users sign in through the real OAuth flow (both auth-server replicas), then every MCP request goes to
whichever crm-mcp replica HAProxy picks, and crm-mcp's own calls go through HAProxy to weather-api,
tickets-mcp, crm-api, the calendar and its authorization server. Pattern 3b runs in
test_single_flight.py, on crm-mcp restarted in exchange mode.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from devkit.scaled import ScaledTopology
from mcp import Client

from tests.integration.test_patterns import call_ok
from tests.integration.test_third_party_calendar import UserAtTheKeyboard, accounts, meeting_args, text_of

pytestmark = pytest.mark.anyio


def mcp_requests(scaled: ScaledTopology) -> dict[str, int]:
    """POST /mcp requests each crm-mcp replica has answered so far (its access log)."""
    return {p.name: len(re.findall(r'"POST /mcp HTTP/1.1" \d{3}', p.logs())) for p in scaled.replicas["crm-mcp"]}


async def patterns_1_2_3(client: Client) -> dict[str, Any]:
    customers = await call_ok(client, "search_customers", {"query": ""})
    return {
        "customers": customers,
        "tickets": await call_ok(client, "list_customer_tickets", {"customer_id": customers[0]["id"]}),
        "weather": await call_ok(client, "get_weather", {"city": "Berlin"}),
    }


async def test_patterns_1_2_3_spread_over_the_replicas_keep_each_users_data_apart(scaled: ScaledTopology) -> None:
    before = mcp_requests(scaled)
    async with scaled.user_session("alice") as alice:
        alices = await patterns_1_2_3(alice)
    async with scaled.user_session("bob") as bob:
        bobs = await patterns_1_2_3(bob)
    after = mcp_requests(scaled)

    assert {c["owner"] for c in alices["customers"]} == {"alice"}
    assert {c["owner"] for c in bobs["customers"]} == {"bob"}
    assert not {c["id"] for c in alices["customers"]} & {c["id"] for c in bobs["customers"]}
    assert all(t["customer_id"] == alices["customers"][0]["id"] for t in alices["tickets"])
    assert alices["weather"]["city"] == "Berlin"
    assert sum(after[name] > before[name] for name in after) >= 2, (before, after)  # spread over replicas


async def connect_and_schedule(scaled: ScaledTopology, user: str, title: str) -> list[Any]:
    """Connect `user`'s calendar (first call elicits, the browser consents), schedule `title`, list meetings."""
    at_keyboard = UserAtTheKeyboard(accounts(scaled, user))
    async with scaled.user_session(user, elicitation_callback=at_keyboard) as client:
        customer = (await call_ok(client, "search_customers", {"query": ""}))[0]["id"]
        scheduled = await client.call_tool("schedule_meeting", {**meeting_args(title), "customer_id": customer})
        assert not scheduled.is_error, text_of(scheduled)
        meetings = await call_ok(client, "list_my_meetings", {})
    assert len(at_keyboard.urls) == 1
    return list(meetings)


async def test_pattern_4_connect_flow_spread_over_the_replicas_per_user(scaled: ScaledTopology) -> None:
    alice_title, bob_title = f"Alice {uuid.uuid4().hex[:8]}", f"Bob {uuid.uuid4().hex[:8]}"
    alice_meetings = await connect_and_schedule(scaled, "alice", alice_title)
    bob_meetings = await connect_and_schedule(scaled, "bob", bob_title)

    assert alice_title in str(alice_meetings)
    assert bob_title not in str(alice_meetings)
    assert bob_title in str(bob_meetings)
    assert alice_title not in str(bob_meetings)
    # The connect page and the callback of each flow: which replicas served them (their access logs).
    pages = {p.name: len(re.findall(r"GET /connect/calendar\?", p.logs())) for p in scaled.replicas["crm-mcp"]}
    callbacks = {
        p.name: len(re.findall(r"GET /connect/calendar/callback", p.logs())) for p in scaled.replicas["crm-mcp"]
    }
    assert sum(pages.values()) >= 2
    assert sum(callbacks.values()) >= 2
    assert len([name for name in pages if pages[name] or callbacks[name]]) >= 2, (pages, callbacks)
