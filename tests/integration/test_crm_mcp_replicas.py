"""Two real crm-mcp processes on one real PostgreSQL (DATABASE_URL): pattern 4's state is shared, not per host.

- The connect flow starts at replica A (the tool call that elicits the link) and is carried by both: the
  link is opened at B, the sign-in comes back to A, the calendar's consent to B, the retry goes to B.
  Each redirect back is sent to the chosen replica by hand (there is no load balancer here); the browser
  keeps its one binding cookie, as it would behind one.
- The refresh-token rotation race: alice's grant is due at both replicas at once (a refresh margin longer
  than any token's life) and the calendar's token endpoint is slow (a proxy holds each request 1 s), so
  both calls overlap. Exactly ONE refresh request reaches the calendar's authorization server (counted at
  the proxy and in its log), both calls succeed, and the grant still works afterwards: had the old
  refresh token been sent twice, the provider's reuse detection would have revoked it.
- PostgreSQL stopped: a tool answers a clear ToolError, the connect page and /health/ready 503 with
  Retry-After, /health stays 200; within 5 s of its return everything works again.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult, ElicitResult, InputRequiredResult

from scripts.local_servers import LocalServer
from tests.integration.conftest import Topology
from tests.integration.test_third_party_calendar import UserAtTheKeyboard, accounts, bearer_session, text_of
from tests.support.databases import create_postgres_database, postgres
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.processes import ServiceProcess, start_service

__all__ = ["postgres"]  # fixture

pytestmark = pytest.mark.anyio

# Start-up (imports, migration) on a loaded 2-core CI runner takes longer than the default 30 s at times.
STARTUP_SECONDS = 120.0
REFRESHED = "Issued token: grant=refresh_token client=crm-mcp sub=alice"


@dataclass
class Replicas:
    a: ServiceProcess
    b: ServiceProcess
    calendar_token: FaultProxy  # the calendar's token endpoint as both replicas reach it

    def refresh_requests(self) -> int:
        return sum(b"grant_type=refresh_token" in body for body in self.calendar_token.forwarded)


@pytest.fixture
async def replicas(topology: Topology, postgres: LocalServer, tmp_path: Path) -> AsyncIterator[Replicas]:
    database_url = await create_postgres_database(postgres)
    async with fault_proxy(topology.env["CALENDAR_AUTH_ISSUER"]) as calendar_token:
        env = {
            **topology.env,
            "DATABASE_URL": database_url,
            "CALENDAR_TOKEN_URL": f"{calendar_token.url}/token",
            "CRM_MCP_CALENDAR_REFRESH_MARGIN_SECONDS": "100000",  # every call finds the grant due
        }
        started: list[ServiceProcess] = []
        try:
            # Both at once (start-up is mostly importing); each is kept, in order, once it is healthy.
            with ThreadPoolExecutor(max_workers=2) as pool:
                starting = [
                    pool.submit(
                        start_service,
                        name,
                        "crm_mcp",
                        port_variable="CRM_MCP_PORT",
                        env=env,
                        workdir=tmp_path / name,
                        health_path="/health/ready",
                        timeout=STARTUP_SECONDS,
                    )
                    for name in ("crm-mcp-pg-a", "crm-mcp-pg-b")
                ]
            started.extend(future.result() for future in starting if future.exception() is None)
            for future in starting:
                future.result()  # a start-up failure, once every start has ended
            yield Replicas(started[0], started[1], calendar_token)
        finally:
            for service in started:
                service.stop()


def on(replica: ServiceProcess, url: str) -> str:
    """`url` (at CRM_MCP_PUBLIC_URL) sent to `replica` instead, as a load balancer might."""
    parts = urlsplit(url)
    return f"{replica.url}{parts.path}?{parts.query}"


async def connect_across(topology: Topology, replicas: Replicas) -> None:
    """alice's calendar connected by a flow spread over both replicas (see the module docstring)."""
    token = await topology.user_token("alice")
    async with bearer_session(f"{replicas.a.url}/mcp", token, elicitation_callback=UserAtTheKeyboard(None)) as client:
        first = await client.session.call_tool("list_my_meetings", {}, allow_input_required=True)
    assert isinstance(first, InputRequiredResult)
    assert first.input_requests is not None
    (request,) = first.input_requests.values()
    people = accounts(topology, "alice")
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
        answer = await browser.get(on(replicas.b, request.params.url))  # type: ignore[union-attr]
        assert answer.status_code == 303, answer.text
        for replica in (replicas.a, replicas.b):  # the sign-in back to A, the calendar's consent back to B
            authorization_url = answer.headers["location"]
            authorized = await people["{0.scheme}://{0.netloc}".format(urlsplit(authorization_url))].authorize(
                authorization_url
            )
            redirect_uri = parse_qs(urlsplit(authorization_url).query)["redirect_uri"][0]
            params = {"code": authorized.code, "state": authorized.state, "iss": authorized.iss}
            answer = await browser.get(on(replica, redirect_uri), params=params)
    assert answer.status_code == 200, answer.text
    assert "Calendar connected" in answer.text

    async with bearer_session(f"{replicas.b.url}/mcp", token, elicitation_callback=UserAtTheKeyboard(None)) as client:
        retried = await client.session.call_tool(
            "list_my_meetings",
            {},
            input_responses={"connect_calendar": ElicitResult(action="accept")},
            request_state=first.request_state,
            allow_input_required=True,
        )
    assert isinstance(retried, CallToolResult)
    assert not retried.is_error, text_of(retried)


async def test_a_connect_flow_started_at_one_replica_finishes_at_the_other(
    topology: Topology, replicas: Replicas
) -> None:
    await connect_across(topology, replicas)


async def test_two_replicas_finding_one_grant_due_send_exactly_one_refresh(
    topology: Topology, replicas: Replicas
) -> None:
    await connect_across(topology, replicas)
    calendar_log = topology.services["calendar-auth-server"]
    token = await topology.user_token("alice")
    requests_before, logged_before = replicas.refresh_requests(), calendar_log.logs().count(REFRESHED)
    replicas.calendar_token.delay_seconds = 1.0  # both calls are surely in flight together
    results: list[CallToolResult] = []

    async def list_meetings(client: Client) -> None:
        results.append(await client.call_tool("list_my_meetings", {}))

    async with (
        bearer_session(f"{replicas.a.url}/mcp", token) as at_a,
        bearer_session(f"{replicas.b.url}/mcp", token) as at_b,
    ):
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(list_meetings, at_a)
                group.start_soon(list_meetings, at_b)
        assert [text_of(result) for result in results if result.is_error] == []
        assert replicas.refresh_requests() - requests_before == 1  # one refresh reached the token endpoint
        assert calendar_log.logs().count(REFRESHED) - logged_before == 1
        # The rotated grant is alive: the old refresh token was never replayed (reuse would revoke the grant).
        replicas.calendar_token.delay_seconds = 0.0
        for client in (at_a, at_b):
            again = await client.call_tool("list_my_meetings", {})
            assert not again.is_error, text_of(again)
    assert replicas.refresh_requests() - requests_before == 3  # one per call after the race, in turn


async def test_postgresql_down_is_a_clear_error_and_503_then_everything_recovers(
    topology: Topology, replicas: Replicas, postgres: LocalServer
) -> None:
    token = await topology.user_token("bob")
    async with httpx2.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{replicas.a.url}/health/ready")).status_code == 200
        postgres.stop(signal.SIGINT)
        try:
            async with bearer_session(
                f"{replicas.a.url}/mcp", token, elicitation_callback=UserAtTheKeyboard(None)
            ) as c:
                with anyio.fail_after(15):  # within one deadline, never a hang
                    down = await c.session.call_tool("list_my_meetings", {}, allow_input_required=True)
            ready = await http.get(f"{replicas.a.url}/health/ready")
            live = await http.get(f"{replicas.a.url}/health")
            page = await http.get(f"{replicas.b.url}/connect/calendar", params={"ref": "x" * 43})
        finally:
            postgres.start()
        assert isinstance(down, CallToolResult)
        assert down.is_error
        assert text_of(down) == "crm-mcp's database is temporarily unavailable; retry in 2 s."
        assert (ready.status_code, ready.headers["retry-after"]) == (503, "2")
        assert live.status_code == 200
        assert (page.status_code, page.headers["retry-after"]) == (503, "2")
        assert postgres.url.split("@")[0] not in replicas.a.logs()  # the password never reaches a log

        with anyio.fail_after(5):  # recovery within 5 s of the server's return
            while True:
                if (await http.get(f"{replicas.a.url}/health/ready")).status_code == 200:
                    break
                await anyio.sleep(0.1)
    async with bearer_session(f"{replicas.a.url}/mcp", token, elicitation_callback=UserAtTheKeyboard(None)) as c:
        recovered = await c.session.call_tool("list_my_meetings", {}, allow_input_required=True)
    assert isinstance(recovered, InputRequiredResult)  # bob is not connected: asked to connect, as before
