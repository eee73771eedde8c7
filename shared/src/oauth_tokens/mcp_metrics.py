"""The MCP server operation duration histogram (semantic conventions: mcp.server.operation.duration).

The SDK already records a SERVER span per MCP message (`mcp.method.name`, `gen_ai.tool.name`); this
middleware adds the matching histogram to /metrics. Method and tool names come from the client, so a
label only takes a method this server answers or a tool it has: anything else is counted as "other".
"""

from __future__ import annotations

import time
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from oauth_tokens.metrics import MCP_SERVER_DURATION

__all__ = ["McpOperationMetrics"]

METHODS = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "completion/complete",
        "logging/setLevel",
        "notifications/initialized",
        "notifications/cancelled",
    }
)


class McpOperationMetrics(ServerMiddleware[Any]):
    """Times every MCP request `server` handles: `server.middleware.append(McpOperationMetrics(server))`."""

    def __init__(self, server: MCPServer[Any]) -> None:
        self.server = server
        self._tools: frozenset[str] = frozenset()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        started = time.perf_counter()
        error = ""
        try:
            result = await call_next(ctx)
        except MCPError as exc:
            error = str(exc.error.code)
            raise
        except Exception as exc:
            error = type(exc).__qualname__
            raise
        else:
            if isinstance(result, CallToolResult) and result.is_error:
                error = "tool_error"
            return result
        finally:
            method = ctx.method if ctx.method in METHODS else "other"
            tool = await self._tool_label(ctx) if method == "tools/call" else ""
            MCP_SERVER_DURATION.labels(method, tool, error).observe(time.perf_counter() - started)

    async def _tool_label(self, ctx: ServerRequestContext[Any, Any]) -> str:
        name = ctx.params.get("name") if ctx.params else None
        if not isinstance(name, str):
            return "other"
        if name not in self._tools:  # a tool added since, or an unknown name: look once more
            self._tools = frozenset(tool.name for tool in await self.server.list_tools())
        return name if name in self._tools else "other"
