"""crm-mcp's tools when a downstream fails, in process: each failure is one ToolError naming the service and why.

Real parts where the failure is real behaviour: crm-api refusing a token without its audience (401) or
another rep's customer (404), weather-api refusing a wrong key (401) or over its rate limit (429),
tickets-mcp refusing a token without the tool's scope, the token endpoint refusing crm-mcp. A stub ASGI
app takes a service's place only for what the real one never does on request: answering 5xx, answering
nonsense, hanging, or not being there at all (`Routes.replaced`). Success paths: test_tools_in_process.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from weather_api.app import create_app as create_weather_api
from weather_api.settings import WeatherApiSettings

from tests.crm_mcp.in_process import (
    CRM_API,
    CRM_MCP,
    TICKETS_MCP,
    WEATHER_API,
    WEATHER_KEY,
    InProcessTopology,
    in_process_topology,
)

pytestmark = pytest.mark.anyio

BRIEFING = "crm:read tickets:read weather:read"
EVERYTHING = "crm:read crm:write tickets:read tickets:write weather:read"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def topology(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessTopology]:
    async with in_process_topology(tmp_path_factory.mktemp("failures")) as running:
        yield running


@pytest.fixture(autouse=True)
def healthy_token_endpoint(topology: InProcessTopology) -> Iterator[None]:
    """Each test starts and ends with the token endpoint granting what is asked."""
    yield
    topology.issuer.state.token_error = None
    topology.granted_scope = None


def answering(status: int, body: str = "", headers: dict[str, str] | None = None) -> ASGIApp:
    """A stub service that answers every request with `status` (the real ones never 5xx on request)."""
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def hanging(scope: Scope, receive: Receive, send: Send) -> None:
    """A stub service that accepts the request and never answers."""
    await anyio.sleep_forever()


async def call(
    topology: InProcessTopology, tool: str, arguments: dict[str, Any], scope: str = EVERYTHING, **settings: Any
) -> CallToolResult:
    """Call `tool` on a fresh crm-mcp as alice, with `settings` overriding crm-mcp's."""
    token = topology.user_token(scope)
    async with topology.as_caller(token, **settings) as client:
        return await client.call_tool(tool, arguments)


def error_text(result: CallToolResult) -> str:
    """The tool error's message, as the model reads it (the SDK adds "Error executing tool <name>: ")."""
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


def requests_to(topology: InProcessTopology, url: str) -> int:
    """How many requests crm-mcp has sent to `url`'s host so far."""
    return topology.routes.requests[httpx2.URL(url).host]


async def test_crm_api_refusing_the_forwarded_token_is_a_401_tool_error(topology: InProcessTopology) -> None:
    # A user token for crm-mcp alone: crm-mcp accepts it, crm-api (pattern 3) checks its own audience and refuses.
    async with topology.as_caller(topology.user_token("crm:read", aud=CRM_MCP)) as client:
        result = await client.call_tool("get_customer", {"customer_id": "cus_001"})

    assert error_text(result).endswith("crm-api rejected the credentials crm-mcp presented (401 Unauthorized).")


async def test_another_reps_customer_is_not_found_and_tickets_mcp_is_never_asked(topology: InProcessTopology) -> None:
    before = requests_to(topology, TICKETS_MCP)

    account = await call(topology, "get_customer", {"customer_id": "cus_005"})
    tickets = await call(topology, "list_customer_tickets", {"customer_id": "cus_005"})

    assert error_text(account).endswith("crm-api: not found (404).")
    assert error_text(tickets).endswith("crm-api: not found (404).")
    assert requests_to(topology, TICKETS_MCP) == before  # crm-api's check came first (tools.py)


async def test_a_failing_crm_api_is_retried_once_for_a_read_and_its_retry_after_passed_on(
    topology: InProcessTopology,
) -> None:
    before = requests_to(topology, CRM_API)
    with topology.routes.replaced(CRM_API, answering(503, headers={"Retry-After": "7"})):
        result = await call(topology, "get_customer", {"customer_id": "cus_001"})

    assert error_text(result).endswith("crm-api is failing (503); retry after 7 s.")
    assert requests_to(topology, CRM_API) - before == 2


async def test_a_write_to_a_failing_crm_api_is_never_repeated(topology: InProcessTopology) -> None:
    before = requests_to(topology, CRM_API)
    with topology.routes.replaced(CRM_API, answering(502)):
        result = await call(topology, "add_customer_note", {"customer_id": "cus_001", "note": "once"})

    assert error_text(result).endswith("crm-api is failing (502); try again later.")
    assert requests_to(topology, CRM_API) - before == 1


async def test_an_unreadable_answer_is_a_tool_error_not_a_crash(topology: InProcessTopology) -> None:
    with topology.routes.replaced(CRM_API, answering(200, '{"unexpected": true}')):
        result = await call(topology, "get_customer", {"customer_id": "cus_001"})

    assert error_text(result).endswith("crm-api returned a response crm-mcp cannot read.")


async def test_an_absent_crm_api_is_unreachable(topology: InProcessTopology) -> None:
    with topology.routes.replaced(CRM_API, None):
        result = await call(topology, "search_customers", {})

    assert error_text(result).endswith("crm-api is unreachable; try again later.")


async def test_a_hanging_crm_api_ends_at_the_deadline(topology: InProcessTopology) -> None:
    with topology.routes.replaced(CRM_API, hanging), anyio.fail_after(10):
        result = await call(
            topology, "get_customer", {"customer_id": "cus_001"}, crm_mcp_downstream_timeout_seconds=0.2
        )

    assert error_text(result).endswith("crm-api did not answer within 0.2 s; try again later.")


async def test_weather_api_refusing_a_wrong_key(topology: InProcessTopology) -> None:
    result = await call(topology, "get_weather", {"city": "Oslo"}, weather_api_key=SecretStr("not-the-key"))

    text = error_text(result)
    assert text.endswith("weather-api rejected the credentials crm-mcp presented (401 Unauthorized).")
    assert "not-the-key" not in text


async def test_weather_api_over_its_rate_limit_says_when_to_retry(topology: InProcessTopology) -> None:
    # The real weather-api, allowing one request a minute per key.
    strict = create_weather_api(
        WeatherApiSettings(weather_api_keys=(WEATHER_KEY,), weather_api_rate_limit=1, _env_file=None)
    )
    async with strict.router.lifespan_context(strict):
        with topology.routes.replaced(WEATHER_API, strict):
            first = await call(topology, "get_weather", {"city": "Oslo"})
            second = await call(topology, "get_weather", {"city": "Oslo"})

    assert not first.is_error
    assert "weather-api rate limit reached (429 Too Many Requests); retry after " in error_text(second)


async def test_a_token_endpoint_refusing_crm_mcp_is_blamed_not_tickets_mcp(topology: InProcessTopology) -> None:
    topology.issuer.state.token_error = (401, "application/json", '{"error": "invalid_client"}')

    result = await call(topology, "list_customer_tickets", {"customer_id": "cus_001"})

    assert error_text(result).endswith(
        "crm-mcp could not get a token for tickets-mcp (authorization server said: invalid_client)."
    )


async def test_tickets_mcp_refusing_for_scope_names_the_scope(topology: InProcessTopology) -> None:
    """tickets-mcp's real step-up (403 insufficient_scope) reaches the model naming the status and the scope."""
    topology.granted_scope = "tickets:read"  # the authorization server grants crm-mcp less than it asked

    result = await call(topology, "open_ticket", {"customer_id": "cus_001", "title": "Broken", "description": "x"})

    assert error_text(result).endswith(
        "tickets-mcp refused the request (403 Forbidden). It requires scope 'tickets:write'."
    )


async def test_a_failing_tickets_mcp(topology: InProcessTopology) -> None:
    with topology.routes.replaced(TICKETS_MCP, answering(503, headers={"Retry-After": "3"})):
        result = await call(topology, "list_customer_tickets", {"customer_id": "cus_001"})

    assert error_text(result).endswith("tickets-mcp is failing (503); retry after 3 s.")


async def test_an_absent_tickets_mcp_is_unreachable(topology: InProcessTopology) -> None:
    with topology.routes.replaced(TICKETS_MCP, None):
        result = await call(topology, "list_customer_tickets", {"customer_id": "cus_001"})

    assert "tickets-mcp is unreachable" in error_text(result)


async def test_a_briefing_names_the_parts_it_could_not_fetch(topology: InProcessTopology) -> None:
    with topology.routes.replaced(WEATHER_API, answering(500)), topology.routes.replaced(TICKETS_MCP, None):
        result = await call(topology, "customer_briefing", {"customer_id": "cus_001"}, scope=BRIEFING)

    briefing = result.structured_content or {}
    assert not result.is_error
    assert briefing["customer"]["id"] == "cus_001"
    assert (briefing["weather"], briefing["open_tickets"]) == (None, None)
    assert briefing["unavailable"]["weather"] == "weather-api is failing (500); try again later."
    assert "tickets-mcp is unreachable" in briefing["unavailable"]["open_tickets"]


async def test_a_briefing_without_the_account_fails(topology: InProcessTopology) -> None:
    with topology.routes.replaced(CRM_API, answering(500)):
        result = await call(topology, "customer_briefing", {"customer_id": "cus_001"}, scope=BRIEFING)

    assert error_text(result).endswith("crm-api is failing (500); try again later.")
