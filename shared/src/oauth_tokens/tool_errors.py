"""Tool argument errors a model can act on: which argument was wrong and why, in one sentence.

The SDK reports arguments that fail a tool's input schema as pydantic's full error text: several lines
per problem, the rejected input echoed back, and a link to pydantic's documentation, none of which helps
a model correct its call. `ModelFriendlyMCPServer` is the SDK's `MCPServer` with that one message
rewritten, e.g. "Invalid arguments for get_customer: customer_id: Field required."; every other error
passes through unchanged, except one: a tool that could not reach its service's database
(`DatabaseUnavailableError`) reads "…'s database is temporarily unavailable; retry in N s." instead of
the SDK's generic crash text. Needs the `mcp` extra.
"""

from __future__ import annotations

from typing import Any

from mcp.server.lowlevel.server import LifespanResultT
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from oauth_tokens.errors import DatabaseUnavailableError

__all__ = ["ModelFriendlyMCPServer", "database_unavailable_message", "describe_argument_errors"]


def describe_argument_errors(tool: str, error: ValidationError) -> str:
    """One sentence naming each rejected argument and pydantic's short reason, without input or URLs."""
    problems = []
    for problem in error.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in problem["loc"]) or "arguments"
        problems.append(f"{where}: {problem['msg']}")
    return f"Invalid arguments for {tool}: {'; '.join(problems)}."


def database_unavailable_message(service: str) -> str:
    """What a tool answers while its service's database cannot be reached (never a crash, never a hang)."""
    seconds = DatabaseUnavailableError.retry_after_seconds
    return f"{service}'s database is temporarily unavailable; retry in {seconds} s."


class ModelFriendlyMCPServer(MCPServer[LifespanResultT]):
    """`MCPServer` whose argument validation errors read as one sentence (see the module docstring)."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[LifespanResultT, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as error:
            cause = error.__cause__
            if isinstance(cause, DatabaseUnavailableError):
                raise ToolError(database_unavailable_message(self.name)) from cause
            if isinstance(error, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            # Chained to the ValidationError, so the SDK still logs the rejected fields' names.
            raise ToolError(describe_argument_errors(name, cause)) from cause
