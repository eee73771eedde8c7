"""A bare MCPServer with crm-mcp's auth and two tools: the baselines for crm-mcp's own overhead.

Same SDK, same Streamable HTTP transport, same token check (the shared validator behind
`JWTTokenVerifier`, audience CRM_MCP_RESOURCE, the SDK's resource check), same DNS-rebinding
protection; no downstream clients, no scope checks. `noop` returns a string; `customers` returns,
with crm-mcp's result model, the customers given in BENCH_BARE_MCP_RESULT (what search_customers
returned), so the SDK's own cost of that structured result is measured apart from crm-mcp's work.
`make bench` starts it as `python -m scripts.bench.bare_mcp` beside the topology.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from crm_mcp.crm_api_client import CustomerSummary, InlineCustomerSummary
from mcp.server.mcpserver import MCPServer
from oauth_tokens import AccessTokenValidator
from oauth_tokens.mcp import JWTTokenVerifier, resource_server_auth, transport_security
from oauth_tokens.serve import serve
from oauth_tokens.settings import TrustSettings
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse


class Settings(TrustSettings):
    """BENCH_BARE_MCP_PORT, and crm-mcp's resource (whose tokens it accepts)."""

    bench_bare_mcp_host: str = "127.0.0.1"
    bench_bare_mcp_port: int
    crm_mcp_resource: str
    # The customers the `customers` tool returns (JSON: a list of crm-mcp's CustomerSummary).
    bench_bare_mcp_result: str = "[]"


async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings) -> Starlette:
    """The bare server's ASGI app: MCP at /mcp and /health."""
    validator = AccessTokenValidator(settings.validator_config([settings.crm_mcp_resource]))
    result = TypeAdapter(list[CustomerSummary]).validate_json(settings.bench_bare_mcp_result)

    @asynccontextmanager
    async def lifespan(_: MCPServer[None]) -> AsyncIterator[None]:
        async with validator:
            yield

    mcp: MCPServer[None] = MCPServer(
        name="bare",
        token_verifier=JWTTokenVerifier(validator, resource=settings.crm_mcp_resource),
        auth=resource_server_auth(settings.auth_issuer, settings.crm_mcp_resource),
        lifespan=lifespan,
    )

    @mcp.tool()
    async def noop() -> str:
        """Does nothing."""
        return "ok"

    @mcp.tool()
    async def customers() -> list[InlineCustomerSummary]:
        """Returns the customers it was started with, as search_customers would."""
        return result

    mcp.custom_route("/health", methods=["GET"])(health)
    return mcp.streamable_http_app(
        streamable_http_path="/mcp", host=settings.bench_bare_mcp_host, transport_security=transport_security()
    )


def main() -> None:
    serve(
        "bench-bare-mcp",
        Settings,
        "scripts.bench.bare_mcp:create_app",
        lambda s: (s.bench_bare_mcp_host, s.bench_bare_mcp_port),
    )


if __name__ == "__main__":
    main()
