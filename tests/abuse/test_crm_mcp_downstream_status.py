"""Fault: a downstream answers 429 (rate limited) or 5xx, with or without Retry-After.

Measured on main before the fix: a 429 or 500 from tickets-mcp reached the model as "unreachable" (or
"call failed: Server returned an error response"), Retry-After dropped, and the kept session was thrown
away. Now every downstream follows one policy (crm_mcp.downstream.error_for_status): the tool error says
what happened and passes Retry-After on, and tickets-mcp's session is kept.

A loopback proxy (tests/support/fault_proxy.py) stands in front of the topology's real tickets-mcp or
weather-api and answers chosen requests itself, as a rate-limiting gateway in front of them would.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import pytest
from crm_mcp.api_key_weather import WeatherApiClient
from crm_mcp.downstream import DownstreamError
from crm_mcp.tickets_mcp_client import TicketsMcpClient
from devkit.topology import Topology
from pydantic import SecretStr

from tests.support.fault_proxy import Fault, FaultProxy, fault_proxy
from tests.support.tickets_client import running_tickets_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DEADLINE = 5.0


def tickets_behind(proxy: FaultProxy, topology: Topology) -> AbstractAsyncContextManager[TicketsMcpClient]:
    return running_tickets_client(f"{proxy.url}/mcp", topology.tickets_auth(), timeout_seconds=DEADLINE)


def upstream(url: str) -> str:
    return url.removesuffix("/mcp")


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after", "faulted"),
    [
        (429, {"Retry-After": "7"}, "tickets-mcp rate limit reached (429 Too Many Requests); retry after 7 s.", 7, 1),
        (500, {}, "tickets-mcp is failing (500); try again later.", None, 1),
        # A read-only call is retried once on 503, like any idempotent downstream request.
        (503, {"Retry-After": "3"}, "tickets-mcp is failing (503); retry after 3 s.", 3, 2),
    ],
)
async def test_an_error_status_from_tickets_mcp_is_told_as_such_and_keeps_the_session(
    topology: Topology, status: int, headers: dict[str, str], expected: str, retry_after: int | None, faulted: int
) -> None:
    async with (
        fault_proxy(upstream(topology.env["TICKETS_MCP_URL"])) as proxy,
        tickets_behind(proxy, topology) as tickets,
    ):
        await tickets.list_tickets("cus_001")
        session = tickets._session
        proxy.fault = Fault(status, headers, mcp_method="tools/call")
        with pytest.raises(DownstreamError) as failed:
            await tickets.list_tickets("cus_001")
        proxy.fault = None
        assert str(failed.value) == expected
        assert failed.value.retry_after_seconds == retry_after
        assert proxy.faulted == faulted
        assert tickets._session is session  # an error status is not a broken connection
        assert await tickets.list_tickets("cus_001") is not None


async def test_a_rate_limited_session_set_up_is_told_as_rate_limited(topology: Topology) -> None:
    async with (
        fault_proxy(upstream(topology.env["TICKETS_MCP_URL"])) as proxy,
        tickets_behind(proxy, topology) as tickets,
    ):
        proxy.fault = Fault(429, {"Retry-After": "30"})
        with pytest.raises(DownstreamError) as failed:
            await tickets.list_tickets("cus_001")
    assert str(failed.value) == "tickets-mcp rate limit reached (429 Too Many Requests); retry after 30 s."
    assert failed.value.retry_after_seconds == 30


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (429, {"Retry-After": "7"}, "weather-api rate limit reached (429 Too Many Requests); retry after 7 s.", 7),
        (503, {"Retry-After": "3"}, "weather-api is failing (503); retry after 3 s.", 3),
    ],
)
async def test_an_http_downstream_follows_the_same_policy(
    topology: Topology, status: int, headers: dict[str, str], expected: str, retry_after: int
) -> None:
    async with fault_proxy(topology.env["WEATHER_API_URL"]) as proxy:
        weather = WeatherApiClient(
            proxy.url, SecretStr(topology.env["WEATHER_API_KEY"]), key_header="X-API-Key", timeout_seconds=DEADLINE
        )
        try:
            assert (await weather.current_weather("Rome")) is not None  # through the proxy, to the real API
            proxy.fault = Fault(status, headers)
            with pytest.raises(DownstreamError) as failed:
                await weather.current_weather("Rome")
        finally:
            await weather.aclose()
    assert str(failed.value) == expected
    assert failed.value.retry_after_seconds == retry_after
