"""Bench group: customer_briefing through this project against a naive client, and what each choice buys.

The naive client does customer_briefing's work itself, the way first code often does: for every call a
new HTTP client (so new connections) for each request, a new client-credentials token, a new MCP session
with tickets-mcp, and the three downstream calls one after the other. Each of the four choices this
project makes can be switched on alone (`Choices`) to show what it buys. The project's figure is the
customer_briefing tool via crm-mcp, so it also pays an MCP hop (bench → crm-mcp) the naive client skips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any, Self
from urllib.parse import quote

import anyio
import httpx2
from devkit.topology import Topology
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from oauth_tokens.token_endpoint import TokenEndpoint

from scripts.bench.measure import SCALE, Ratio, Target, interleaved_throughputs, throughput_ratio

PROJECT_TARGET = Target(">=", 2)
CALLERS = 10
CUSTOMER = "cus_001"


@dataclass(frozen=True)
class Choices:
    """Which of this project's choices the bench client makes (none: the naive client)."""

    token_cache: bool = False
    connection_reuse: bool = False
    session_reuse: bool = False
    concurrent_branches: bool = False

    @property
    def label(self) -> str:
        chosen = [field.name.replace("_", " ") for field in fields(self) if getattr(self, field.name)]
        if len(chosen) == len(fields(self)):
            return "all four choices"
        return " + ".join(chosen) or "naive"


class _Bearer(httpx2.Auth):
    """Sends `token`, which the client may replace between calls."""

    def __init__(self, token: str = "") -> None:
        self.token = token

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class BriefingClient:
    """customer_briefing's downstream work from the bench: crm-api as the user, tickets-mcp, weather-api."""

    def __init__(self, topology: Topology, user_token: str, choices: Choices) -> None:
        self.choices = choices
        self._env = topology.env
        self._user = {"Authorization": f"Bearer {user_token}"}
        self._token_source = topology.tickets_auth() if choices.token_cache else None
        self._token_endpoint = TokenEndpoint(
            self._env["AUTH_TOKEN_URL"], self._env["CRM_MCP_CLIENT_ID"], **topology.crm_mcp_credential()
        )
        self._call_token = _Bearer()
        self._stack = AsyncExitStack()
        self._shared: httpx2.AsyncClient | None = None
        self._tickets_http: httpx2.AsyncClient | None = None
        self._session: Client | None = None

    async def __aenter__(self) -> Self:
        # Kept clients and the kept session are opened (and later closed) here, in the owning task.
        tickets_auth = self._token_source or self._call_token
        if self.choices.connection_reuse:
            self._shared = await self._stack.enter_async_context(httpx2.AsyncClient(timeout=30))
        if self.choices.connection_reuse or self.choices.session_reuse:
            if self._token_source is None:  # the kept session opens with a token; each call gets a new one
                self._call_token.token = await self._fresh_token()
            self._tickets_http = await self._stack.enter_async_context(
                httpx2.AsyncClient(auth=tickets_auth, timeout=30)
            )
        if self.choices.session_reuse:
            assert self._tickets_http is not None
            transport = streamable_http_client(self._env["TICKETS_MCP_URL"], http_client=self._tickets_http)
            self._session = await self._stack.enter_async_context(Client(transport))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()
        if self._token_source is not None:
            await self._token_source.aclose()

    @asynccontextmanager
    async def _http(self) -> AsyncIterator[httpx2.AsyncClient]:
        if self._shared is not None:
            yield self._shared
            return
        async with httpx2.AsyncClient(timeout=30) as http:
            yield http

    async def _get_json(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
        async with self._http() as http:
            response = await http.get(url, params=params, headers=headers)
            response.raise_for_status()
            return response.json()

    async def _fresh_token(self) -> str:
        async with self._http() as http:
            # Authenticated as crm-mcp is (private_key_jwt by default: a fresh assertion per request).
            data, headers = self._token_endpoint.authenticate(
                {"grant_type": "client_credentials", "resource": self._env["TICKETS_MCP_RESOURCE"]}
            )
            response = await http.post(self._env["AUTH_TOKEN_URL"], data=data, headers=headers)
            response.raise_for_status()
            return str(response.json()["access_token"])

    async def _open_tickets(self) -> None:
        auth: httpx2.Auth | None = self._token_source
        if auth is None:  # one new token per call
            token = await self._fresh_token()
            self._call_token.token = token
            auth = _Bearer(token)
        arguments = {"customer_id": CUSTOMER, "status": "open"}
        if self._session is not None:
            await self._session.call_tool("list_tickets", arguments)
        elif self._tickets_http is not None:
            transport = streamable_http_client(self._env["TICKETS_MCP_URL"], http_client=self._tickets_http)
            async with Client(transport) as session:
                await session.call_tool("list_tickets", arguments)
        else:
            async with (
                httpx2.AsyncClient(auth=auth, timeout=30) as http,
                Client(streamable_http_client(self._env["TICKETS_MCP_URL"], http_client=http)) as session,
            ):
                await session.call_tool("list_tickets", arguments)

    async def _weather(self, city: str) -> None:
        await self._get_json(
            f"{self._env['WEATHER_API_URL']}/v1/current", {"X-API-Key": self._env["WEATHER_API_KEY"]}, {"city": city}
        )

    async def briefing(self) -> None:
        """The account (as the user), then its open tickets and the weather where the customer is."""
        customer = await self._get_json(f"{self._env['CRM_API_URL']}/customers/{quote(CUSTOMER)}", self._user)
        if self.choices.concurrent_branches:
            async with anyio.create_task_group() as group:
                group.start_soon(self._open_tickets)
                group.start_soon(self._weather, customer["city"])
        else:
            await self._open_tickets()
            await self._weather(customer["city"])


VARIANTS = (
    Choices(),
    Choices(token_cache=True),
    Choices(connection_reuse=True),
    Choices(session_reuse=True),
    Choices(concurrent_branches=True),
    Choices(True, True, True, True),
)


async def bench_naive(topology: Topology, crm_mcp: Client, user_token: str) -> list[Ratio]:
    """customer_briefing throughput with 10 callers: crm-mcp and each bench client variant against the naive one."""
    callers = 2 if SCALE.quick else CALLERS  # `--quick` only checks that the group runs
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(BriefingClient(topology, user_token, choices)) for choices in VARIANTS
        ]

        async def via_crm_mcp() -> None:
            await crm_mcp.call_tool("customer_briefing", {"customer_id": CUSTOMER})

        operations = [via_crm_mcp, *(client.briefing for client in clients)]
        project, naive, *variants = await interleaved_throughputs(
            operations, callers=callers, calls_per_caller=3, rounds=3
        )
    ratios = [
        throughput_ratio(
            f"customer_briefing, {callers} callers: this project vs naive client", project, naive, PROJECT_TARGET
        )
    ]
    for choices, figures in zip(VARIANTS[1:], variants, strict=True):
        ratios.append(throughput_ratio(f"  naive client + {choices.label}, vs naive", figures, naive))
    return ratios
