"""crm-mcp's downstream clients against servers that hang or drip: one deadline, no convoy, the right party blamed.

The misbehaving servers are real loopback TCP servers (tests/support/hanging.py); the token endpoint is the
loopback authorization-server stand-in of the shared tests. Durations are printed, not asserted, except a
bound of three deadlines that only a convoy (five deadlines one after another) or a per-read timeout exceeds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from crm_mcp.api_key_weather import WeatherApiClient
from crm_mcp.downstream import DownstreamError
from crm_mcp.tickets_mcp_client import TicketsMcpClient
from oauth_tokens import ClientCredentialsAuth, TokenEndpointError
from pydantic import SecretStr

from tests.shared.loopback import LoopbackAuthServer
from tests.support.hanging import misbehaving_server
from tests.support.tickets_client import running_tickets_client

pytestmark = pytest.mark.anyio

DEADLINE = 1.0
CALLERS = 5


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[LoopbackAuthServer]:
    server = LoopbackAuthServer().start()
    yield server
    server.stop()


def tickets_client(tickets_url: str, token_url: str) -> AbstractAsyncContextManager[TicketsMcpClient]:
    auth = ClientCredentialsAuth(token_url, "crm-mcp-agent", "agent-secret", timeout_seconds=DEADLINE)
    return running_tickets_client(tickets_url, auth, timeout_seconds=DEADLINE)


async def concurrently(call: Callable[[], Awaitable[object]], callers: int = CALLERS) -> tuple[list[str], float]:
    """Run `call` `callers` times at once; each must fail with a DownstreamError. Their messages, and the time taken."""
    errors: list[str] = []

    async def one() -> None:
        with pytest.raises(DownstreamError) as failed:
            await call()
        errors.append(str(failed.value))

    started = time.monotonic()
    with anyio.fail_after(CALLERS * DEADLINE + 10):  # the test itself never hangs
        async with anyio.create_task_group() as group:
            for _ in range(callers):
                group.start_soon(one)
    return errors, time.monotonic() - started


async def test_concurrent_calls_against_a_hanging_tickets_mcp_end_together(
    token_endpoint: LoopbackAuthServer,
) -> None:
    async with (
        misbehaving_server() as hanging,
        tickets_client(f"{hanging.url}/mcp", f"{token_endpoint.url}/token") as tickets,
    ):
        errors, took = await concurrently(lambda: tickets.list_tickets("cus_001"))
        connections = hanging.connections
        # Just after the failure, a new call is refused from memory, without another attempt.
        with pytest.raises(DownstreamError, match="did not answer"):
            await tickets.list_tickets("cus_001")
        connections_after = hanging.connections

    print(f"{CALLERS} calls against a hanging tickets-mcp ended after {took:.2f} s (deadline {DEADLINE} s)")
    assert errors == [f"tickets-mcp did not answer within {DEADLINE:g} s; try again later."] * CALLERS
    assert 1 <= connections <= 2  # one session set-up shared by all callers (a connection, maybe a retry)
    assert connections_after == connections
    assert took < 3 * DEADLINE  # a convoy takes CALLERS deadlines


async def test_a_hanging_token_endpoint_is_blamed_not_tickets_mcp(token_endpoint: LoopbackAuthServer) -> None:
    async with (
        misbehaving_server() as hanging_token_endpoint,
        misbehaving_server() as tickets_mcp,
        tickets_client(f"{tickets_mcp.url}/mcp", f"{hanging_token_endpoint.url}/token") as tickets,
    ):
        errors, took = await concurrently(lambda: tickets.list_tickets("cus_001"))
        token_connections, tickets_connections = hanging_token_endpoint.connections, tickets_mcp.connections

    print(f"{CALLERS} calls against a hanging token endpoint ended after {took:.2f} s")
    expected = (
        f"crm-mcp could not get a token for tickets-mcp: The token endpoint did not answer within {DEADLINE:g} s."
    )
    assert errors == [expected] * CALLERS
    assert token_connections == 1  # one token request shared by all callers
    assert tickets_connections == 0  # never reached: without a token there is nothing to send
    assert took < 3 * DEADLINE


async def test_the_first_call_after_the_token_endpoint_returns_succeeds(token_endpoint: LoopbackAuthServer) -> None:
    token_endpoint.state.reset()
    token_endpoint.state.token_delay_seconds = 3 * DEADLINE  # answers, but far too late
    auth = ClientCredentialsAuth(
        f"{token_endpoint.url}/token", "crm-mcp-agent", "agent-secret", timeout_seconds=DEADLINE
    )
    errors: list[str] = []

    async def get_token() -> None:
        with pytest.raises(TokenEndpointError) as failed:
            await auth.get_token()
        errors.append(str(failed.value))

    try:
        with anyio.fail_after(CALLERS * DEADLINE + 10):
            async with anyio.create_task_group() as group:
                for _ in range(CALLERS):
                    group.start_soon(get_token)
        requests_while_hanging = token_endpoint.state.counts["token"]
        token_endpoint.state.token_delay_seconds = 0  # the endpoint is back
        await anyio.sleep(auth.cache.failure_backoff_seconds)  # the failure is remembered this long
        token = await auth.get_token()
    finally:
        await auth.aclose()

    assert errors == [errors[0]] * CALLERS
    assert "The token endpoint did not answer" in errors[0]
    assert requests_while_hanging == 1  # one request shared by all callers
    assert token == "opaque-token-2"  # the first call after the back-off got a token


async def test_a_dripping_weather_api_ends_at_the_deadline() -> None:
    async with misbehaving_server(drip_every_seconds=DEADLINE / 4) as dripping:
        weather = WeatherApiClient(dripping.url, SecretStr("key"), key_header="X-API-Key", timeout_seconds=DEADLINE)
        try:
            errors, took = await concurrently(lambda: weather.current_weather("Paris"), callers=1)
        finally:
            await weather.aclose()

    print(f"a weather-api dripping a byte every {DEADLINE / 4} s was cut off after {took:.2f} s")
    assert errors == [f"weather-api did not answer within {DEADLINE:g} s; try again later."]
    assert dripping.connections == 1  # timed out: never retried
    assert took < 3 * DEADLINE  # per-read timeouts alone would wait for ever
