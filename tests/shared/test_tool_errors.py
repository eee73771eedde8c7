"""Tool argument errors reach the model as one sentence naming each wrong argument, with no pydantic
input echo or documentation URL; a tool's own ToolError and crashes are unchanged. In-memory MCP
(the SDK's own client and server, no mock)."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import TextContent
from oauth_tokens.errors import DatabaseUnavailableError
from oauth_tokens.tool_errors import ModelFriendlyMCPServer
from pydantic import Field

pytestmark = pytest.mark.anyio


def _server() -> ModelFriendlyMCPServer[object]:
    server: ModelFriendlyMCPServer[object] = ModelFriendlyMCPServer(name="test")

    @server.tool()
    def find(
        query: Annotated[str, Field(max_length=5)], status: Literal["open", "closed"] = "open", limit: int = 10
    ) -> str:
        """Find things."""
        if query == "fail":
            raise ToolError("The downstream did not answer")
        if query == "crash":
            raise RuntimeError("secret internal detail")
        if query == "nodb":
            raise DatabaseUnavailableError("postgresql://u:secret@db/x is down")
        return f"{query} {status} {limit}"

    return server


async def _error_text(arguments: dict[str, object]) -> str:
    async with Client(_server()) as client:
        result = await client.call_tool("find", arguments)
    assert result.is_error
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def test_wrong_arguments_are_one_sentence_naming_each() -> None:
    text = await _error_text({"query": "far too long", "status": "pending", "limit": "many"})
    assert text == (
        "Invalid arguments for find: query: String should have at most 5 characters; "
        "status: Input should be 'open' or 'closed'; "
        "limit: Input should be a valid integer, unable to parse string as an integer."
    )


async def test_a_missing_argument_is_named_without_a_url_or_the_input() -> None:
    text = await _error_text({"status": "closed"})
    assert text == "Invalid arguments for find: query: Field required."
    assert "http" not in text
    assert "\n" not in text


async def test_other_errors_are_unchanged() -> None:
    assert await _error_text({"query": "fail"}) == "Error executing tool find: The downstream did not answer"
    assert await _error_text({"query": "crash"}) == "Error executing tool find"


async def test_valid_arguments_still_work() -> None:
    async with Client(_server()) as client:
        result = await client.call_tool("find", {"query": "x", "status": "closed"})
    assert not result.is_error


async def test_a_database_outage_is_a_clear_retry_later_not_a_crash() -> None:
    text = await _error_text({"query": "nodb"})
    assert text == "test's database is temporarily unavailable; retry in 2 s."
    assert "secret" not in text
