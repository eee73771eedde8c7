"""A browser-based MCP client calling crm-mcp's /mcp straight from its page (CORS), from an allowed origin and not.

The page is served by a loopback web server; its script is `fetch`, run by Chromium with Chromium's own
CORS checks. The token is alice's, obtained through the login and consent pages in the same browser.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from devkit.topology import Topology
from playwright.sync_api import Browser, Page

from tests.integration.browser.conftest import DISALLOWED_HOST
from tests.integration.browser.flow import BrowserClient, authorization, exchange
from tests.integration.browser.origin import OriginServer
from tests.integration.browser.user import sent_back, sign_in

PROTOCOL_VERSION = "2025-11-25"
PREFLIGHT_REFUSED = '"OPTIONS /mcp HTTP/1.1" 400'
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "browser-test", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
SEARCH_ALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "search_customers", "arguments": {"query": ""}},
}

# POST each message in turn, as an MCP client in a page does: the session id of the first answer goes on
# every later request. A fetch the browser blocks (CORS) rejects with a TypeError, recorded as `error`.
POST_MESSAGES = """async ({url, token, protocolVersion, messages}) => {
    const answers = [];
    let session = null;
    for (const message of messages) {
        const headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": protocolVersion,
            "Mcp-Method": message.method,
        };
        if (token) headers["Authorization"] = `Bearer ${token}`;
        if (session) headers["Mcp-Session-Id"] = session;
        if (message.params && message.params.name) headers["Mcp-Name"] = message.params.name;
        try {
            const response = await fetch(url, {method: "POST", headers, body: JSON.stringify(message)});
            session = response.headers.get("Mcp-Session-Id") || session;
            answers.push({
                status: response.status,
                session: response.headers.get("Mcp-Session-Id"),
                challenge: response.headers.get("WWW-Authenticate"),
                body: await response.text(),
            });
        } catch (error) {
            answers.push({error: String(error)});
        }
    }
    return answers;
}"""


@pytest.fixture(scope="module")
def alice_token(chromium: Browser, topology: Topology, client: BrowserClient) -> str:
    """alice's access token for crm-mcp, from the login and consent pages in this browser."""
    context = chromium.new_context()
    page = context.new_page()
    request = authorization(topology, client, "crm:read")
    page.goto(request.url)
    sign_in(page, "alice", topology.password("alice"))
    page.get_by_role("button", name="Allow").click()
    code = sent_back(page, client)["code"]
    context.close()
    return exchange(topology, client, request, code)


def post_from_page(
    page: Page, topology: Topology, token: str | None, *messages: dict[str, Any]
) -> list[dict[str, Any]]:
    arguments = {
        "url": topology.crm_mcp_url,
        "token": token,
        "protocolVersion": PROTOCOL_VERSION,
        "messages": list(messages),
    }
    answers: list[dict[str, Any]] = page.evaluate(POST_MESSAGES, arguments)
    return answers


def result_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The JSON-RPC result in an answer's body (plain JSON, or the one `data:` event of an SSE stream)."""
    body = str(answer["body"])
    events = [line.removeprefix("data: ") for line in body.splitlines() if line.startswith("data: ")]
    message = json.loads(events[-1] if events else body)
    assert "result" in message, message
    result: dict[str, Any] = message["result"]
    return result


def test_a_page_on_an_allowed_origin_calls_mcp_with_a_bearer_token(
    page: Page, topology: Topology, origin: OriginServer, alice_token: str
) -> None:
    page.goto(f"{origin.origin('127.0.0.1')}/")

    (unauthenticated,) = post_from_page(page, topology, None, INITIALIZE)
    initialize, initialized, search = post_from_page(page, topology, alice_token, INITIALIZE, INITIALIZED, SEARCH_ALL)

    # The 401 and its challenge reach the page's script: it can discover where to log in.
    assert unauthenticated.get("status") == 401, unauthenticated
    assert 'resource_metadata="' in unauthenticated["challenge"]
    assert initialize.get("status") == 200, initialize
    assert initialize["session"]  # exposed, so the page can send it back
    assert result_of(initialize)["serverInfo"]["name"] == "crm-mcp"
    assert initialized["status"] == 202
    customers = result_of(search)["structuredContent"]["result"]
    assert customers
    assert {customer["owner"] for customer in customers} == {"alice"}


def test_a_page_on_another_origin_is_refused(
    page: Page, topology: Topology, origin: OriginServer, alice_token: str
) -> None:
    crm_mcp = topology.services["crm-mcp"]
    refused_preflights = crm_mcp.logs().count(PREFLIGHT_REFUSED)
    page.goto(f"{origin.origin(DISALLOWED_HOST)}/")
    assert page.evaluate("location.origin") == origin.origin(DISALLOWED_HOST)  # the page did load there

    (refused,) = post_from_page(page, topology, alice_token, INITIALIZE)

    assert refused == {"error": "TypeError: Failed to fetch"}
    # Refused by crm-mcp at the preflight, before any MCP request left the browser.
    assert crm_mcp.logs().count(PREFLIGHT_REFUSED) == refused_preflights + 1
