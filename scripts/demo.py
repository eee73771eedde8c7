"""`make demo`: log in as a demo user and call one tool per pattern, narrating every hop; exit 1 if anything is off.

Runs against the topology `make up` started (settings from .env). It uses only what a real client has:
the official MCP SDK client with its OAuth provider (discovery, dynamic client registration,
authorization code + PKCE), driven headlessly through the auth server's login and consent pages.
Tokens and keys are never printed: only who called whom, with which kind of credential, for which
audience and scopes. Each run adds one ticket (crm-mcp has no tool to delete one) and says so; the
counts it prints tell earlier runs' tickets apart, and `make down` deletes the data.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitRequestURLParams, ElicitResult, TextContent
from oauth_tokens import AccessTokenValidator, Principal, TokenExchange, ValidatorConfig
from oauth_tokens.telemetry import configure_tracing, trace_http

from scripts.headless_login import HeadlessBrowser, open_in_browser, user_oauth
from scripts.topology import active_services, load_env

DEMO_TICKET_TITLE = "Demo: renewal question"


class DemoFailure(Exception):
    """Something the demo checks did not hold."""


def say(text: str = "") -> None:
    print(text, flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)
    say(f"    ✓ {what}")


def describe(principal: Principal) -> str:
    audiences = ", ".join(principal.audiences)
    scopes = " ".join(sorted(principal.scopes))
    actor = f" act.sub={principal.actor}" if principal.actor else ""
    return f"sub={principal.subject} client={principal.client_id} aud=[{audiences}] scope={scopes}{actor}"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = " ".join(b.text for b in result.content if isinstance(b, TextContent))
        raise DemoFailure(f"{tool} failed: {text}")
    content = result.structured_content
    return content["result"] if isinstance(content, dict) and set(content) == {"result"} else content


async def validated(env: dict[str, str], token: str, audiences: Sequence[str]) -> Principal:
    """Check a token the way the services do (shared package, JWKS by discovery) and return its principal."""
    config = ValidatorConfig(issuers=[env["AUTH_ISSUER"]], audiences=list(audiences))
    async with AccessTokenValidator(config) as validator:
        return await validator.validate(token)


def missing_prerequisite(env: dict[str, str]) -> str | None:
    """What the demo needs that does not answer, said in one line; None when all is there."""
    if all(service.name != "auth-server" for service in active_services(env)):
        return "make demo logs in as the local demo users, so it needs COMPOSE_PROFILES=local-auth in .env"
    needed = {
        "crm-mcp": env["CRM_MCP_RESOURCE"].removesuffix("/mcp") + "/health",
        "the auth-server": env["AUTH_ISSUER"] + "/.well-known/oauth-authorization-server",
    }
    for name, url in needed.items():
        try:
            httpx2.get(url, timeout=3).raise_for_status()
        except httpx2.HTTPError:
            return f"{name} does not answer at {url}: run `make up` first"
    return None


async def run_demo(env: dict[str, str]) -> None:
    crm_mcp = env["CRM_MCP_RESOURCE"]
    say(f"Logging in as alice at {crm_mcp} (OAuth 2.1: discovery → dynamic registration → login → PKCE code → token)")
    provider, storage = user_oauth(crm_mcp, "alice", env["DEMO_ALICE_PASSWORD"])
    async with (
        trace_http(
            httpx2.AsyncClient(auth=provider, timeout=30), pattern="mcp_client", credential="user_token"
        ) as http,
        Client(streamable_http_client(crm_mcp, http_client=http)) as alice,
    ):
        assert storage.tokens is not None
        user = await validated(env, storage.tokens.access_token, [crm_mcp])
        say(f"  alice's token (validated with the shared package): {describe(user)}")
        exchange = env["CRM_API_AUDIENCE"] not in user.audiences
        say(f"  CRM_API_AUTH_MODE={'exchange' if exchange else 'cascade'} (read off the token's aud)")
        if exchange:
            check(user.audiences == (crm_mcp,), "the token names crm-mcp alone: passing it on to crm-api is useless")
            await narrate_exchange(env, storage.tokens.access_token, user)
        else:
            check(env["CRM_API_AUDIENCE"] in user.audiences, "the token also names crm-api: the same trust boundary")
            say("\nPattern 3 — token cascade: search_customers")
            say("  client ─(alice's token)→ crm-mcp ─(the same token, forwarded)→ crm-api")
        say("  crm-api validates iss, its own audience, exp and scope crm:read itself, then filters by sub=alice")
        customers = await call(alice, "search_customers", {"query": ""})
        check(
            bool(customers) and all(c["owner"] == "alice" for c in customers),
            f"{len(customers)} customers, all alice's",
        )
        customer = customers[0]
        noted = (await call(alice, "add_customer_note", {"customer_id": customer["id"], "note": "make demo"}))["notes"]
        actor = env["CRM_MCP_CLIENT_ID"] if exchange else None
        check(
            noted[-1]["author"] == "alice" and noted[-1]["actor"] == actor,
            f"add_customer_note (crm:write): crm-api recorded author={noted[-1]['author']} actor={noted[-1]['actor']}",
        )

        say("\nPattern 2 — client credentials, MCP → MCP: list_customer_tickets")
        say("  crm-mcp ─(client_id + secret, resource=tickets-mcp)→ auth-server: a token of crm-mcp's own")
        say("  crm-mcp ─(that token, aud=tickets-mcp, scope tickets:read tickets:write)→ tickets-mcp tool list_tickets")
        tickets = await call(alice, "list_customer_tickets", {"customer_id": customer["id"]})
        earlier = sum(t["title"] == DEMO_TICKET_TITLE for t in tickets)
        check(
            all(t["customer_id"] == customer["id"] for t in tickets),
            f"{len(tickets)} ticket(s) for {customer['name']}"
            + (f", {earlier} of them opened by earlier make demo runs" if earlier else ""),
        )
        say("  open_ticket adds one ticket on every run (it stays: `make down` deletes the data)")
        ticket = await call(
            alice,
            "open_ticket",
            {
                "customer_id": customer["id"],
                "title": DEMO_TICKET_TITLE,
                "description": "Opened by make demo",
            },
        )
        check(
            ticket["created_by_client"] == env["CRM_MCP_CLIENT_ID"],
            f"ticket {ticket['id']} created by client {ticket['created_by_client']} (from its token), "
            f"requested_by={ticket['requested_by']} (data)",
        )

        say("\nPattern 1 — API key: get_weather")
        say(f"  crm-mcp ─(API key from its settings in a header; never shown)→ weather-api: {customer['city']}")
        weather = await call(alice, "get_weather", {"city": customer["city"]})
        check(weather["city"] == customer["city"], f"{weather['temperature_c']} °C, {weather['condition']}")

        say("\nComposite — customer_briefing: all three patterns at once")
        briefing = await call(alice, "customer_briefing", {"customer_id": customer["id"]})
        check(
            not briefing["unavailable"],
            f"customer ({'exchange' if exchange else 'cascade'}), open tickets (client credentials), weather (API key)",
        )

    say("\nBoundaries")
    provider, _ = user_oauth(crm_mcp, "bob", env["DEMO_BOB_PASSWORD"])
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(crm_mcp, http_client=http)) as bob,
    ):
        bobs = await call(bob, "search_customers", {"query": ""})
    check(
        not {c["id"] for c in bobs} & {c["id"] for c in customers},
        "bob sees his own customers, none of alice's",
    )
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            env["TICKETS_MCP_RESOURCE"],
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Authorization": f"Bearer {storage.tokens.access_token}"},
        )
    check(response.status_code == 401, "tickets-mcp refuses alice's token (wrong audience): no confused deputy")
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(
            env["CRM_API_URL"] + "/customers", headers={"Authorization": f"Bearer {storage.tokens.access_token}"}
        )
    if exchange:
        check(response.status_code == 401, "crm-api refuses alice's crm-mcp token sent straight to it: no passthrough")
    else:
        check(response.status_code == 200, "crm-api accepts alice's crm-mcp token sent straight to it (the cascade)")
    await pattern4_third_party(env, customer["id"])
    await step_up(env, customer["id"])
    other = "cascade" if exchange else "exchange"
    say(f"\nThe other way to crm-api: make down, then make up CRM_API_AUTH_MODE={other}, then make demo.")


async def narrate_exchange(env: dict[str, str], user_token: str, user: Principal) -> None:
    """Pattern 3b's hop, shown by doing what crm-mcp does (its credentials from .env; no token is printed)."""
    crm_api = env["CRM_API_AUDIENCE"]
    say("\nPattern 3b — token exchange (RFC 8693): search_customers")
    say("  client ─(alice's token)→ crm-mcp; alice's token goes no further than the auth-server:")
    say(f"  crm-mcp ─(client {env['CRM_MCP_CLIENT_ID']} + secret; subject_token=alice's token; resource={crm_api};")
    say("           scope=crm:read, only what this tool needs)→ auth-server /token")
    exchange = TokenExchange(
        env.get("AUTH_TOKEN_URL") or f"{env['AUTH_ISSUER']}/token",
        env["CRM_MCP_CLIENT_ID"],
        env["CRM_MCP_CLIENT_SECRET"],
    )
    try:
        token = await exchange.token_for(user_token, resource=crm_api, scope="crm:read")
    finally:
        await exchange.aclose()
    issued = await validated(env, token, [crm_api])
    say(f"  auth-server → crm-mcp, the same exchange repeated here: {describe(issued)}")
    check(
        issued.subject == user.subject and issued.audiences == (crm_api,) and issued.scopes == {"crm:read"},
        "same user, crm-api its only audience, crm:read only",
    )
    check(issued.actor == env["CRM_MCP_CLIENT_ID"], f"act.sub={issued.actor}: crm-api sees who acts for alice")
    check(issued.expires_at <= user.expires_at, "it ends no later than alice's own token")
    say("  crm-mcp ─(the exchanged token; cached per user token and scope until shortly before it ends)→ crm-api")


async def step_up(env: dict[str, str], customer_id: str) -> None:
    """alice consents to crm:read only; adding a note makes the SDK client step up (no 403 handling here)."""
    crm_mcp = env["CRM_MCP_RESOURCE"]
    say("\nStep-up — a client that consented to less: alice grants crm:read only, then adds a note")
    say('  crm-mcp answers add_customer_note with 403 insufficient_scope, scope="crm:write", before the tool runs;')
    say("  the SDK client logs alice in again, asking for its first request plus crm:write (SEP-2350), and retries")
    provider, storage = user_oauth(crm_mcp, "alice", env["DEMO_ALICE_PASSWORD"], scope="crm:read")
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(crm_mcp, http_client=http)) as alice,
    ):
        await call(alice, "get_customer", {"customer_id": customer_id})
        assert storage.tokens is not None
        before = await validated(env, storage.tokens.access_token, [crm_mcp])
        check(before.scopes == {"crm:read"}, "alice's first token: scope crm:read only")
        noted = await call(alice, "add_customer_note", {"customer_id": customer_id, "note": "Added by make demo"})
        after = await validated(env, storage.tokens.access_token, [crm_mcp])
    check(
        {"crm:read", "crm:write"} <= after.scopes and any(n["text"] == "Added by make demo" for n in noted["notes"]),
        f"note added after the step-up; the new token: scope={' '.join(sorted(after.scopes))}",
    )


async def pattern4_third_party(env: dict[str, str], customer_id: str) -> None:
    """Pattern 4: connect alice's calendar through a URL-mode elicitation, schedule a meeting, disconnect."""
    crm_mcp = env["CRM_MCP_RESOURCE"]
    say("\nPattern 4 — the user's own account at a third party: schedule_meeting in alice's calendar")
    say("  calendar-api trusts only its own authorization server (its own users, keys and issuer)")
    opened: list[str] = []

    async def alice_at_the_keyboard(context: Any, params: Any) -> ElicitResult:
        if not isinstance(params, ElicitRequestURLParams):
            raise DemoFailure("expected a URL-mode elicitation")
        opened.append(params.url)
        say(f"  crm-mcp elicits a URL: {params.url.split('?')[0]}?ref=… (opaque, single-use; no name, no token)")
        say("  the browser: sign in at crm-mcp's auth-server as alice (crm-mcp checks it is the same sub),")
        say("               then at the calendar's auth-server as alice, and allow calendar:read calendar:write")
        people = {
            env["AUTH_ISSUER"]: HeadlessBrowser("alice", env["DEMO_ALICE_PASSWORD"]),
            env["CALENDAR_AUTH_ISSUER"]: HeadlessBrowser("alice", env["CALENDAR_ALICE_PASSWORD"]),
        }
        page = await open_in_browser(params.url, people)
        check(page.status_code == 200 and "Calendar connected" in page.text, "consent given; the page says connected")
        say("  crm-mcp redeemed the code as a confidential client; the tokens are in its vault, AES-GCM encrypted")
        return ElicitResult(action="accept")

    provider, _ = user_oauth(crm_mcp, "alice", env["DEMO_ALICE_PASSWORD"])
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(crm_mcp, http_client=http), elicitation_callback=alice_at_the_keyboard) as alice,
    ):
        await call(alice, "disconnect_calendar", {})  # start from no grant, so the consent is shown
        meeting = await call(
            alice,
            "schedule_meeting",
            {"customer_id": customer_id, "start": "2026-12-01T10:00:00+00:00", "minutes": 30, "title": "Demo call"},
        )
        check(len(opened) == 1, "the first call elicited once; the client retried after the consent")
        check(
            bool(meeting["attendees"]),
            f"meeting {meeting['id']} in alice's own calendar, with {meeting['attendees'][0]}",
        )
        meetings = await call(alice, "list_my_meetings", {})
        check(
            any(m["id"] == meeting["id"] for m in meetings), "list_my_meetings: no elicitation, the vault has the grant"
        )
        disconnected = await call(alice, "disconnect_calendar", {})
        check(
            disconnected["disconnected"], "disconnect_calendar: revoked at the calendar provider (RFC 7009), forgotten"
        )


def find(error: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    """`error` itself or the first exception of `kind` inside it (the MCP client raises exception groups)."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        return next((found for inner in error.exceptions if (found := find(inner, kind)) is not None), None)
    return None


def main() -> int:
    env = load_env()
    # The demo's own MCP client spans start the trace `make trace` draws (when .env turns tracing on).
    configure_tracing(
        "mcp-client", otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""), traces_dir=env.get("TRACES_DIR", "")
    )
    if (problem := missing_prerequisite(env)) is not None:
        print(f"✗ {problem}", file=sys.stderr)
        return 1
    try:
        anyio.run(run_demo, env)
    except Exception as error:
        if (failure := find(error, DemoFailure)) is not None:
            say(f"\n✗ demo failed: {failure}")
            return 1
        if (unreachable := find(error, (httpx2.TransportError, OSError))) is not None:
            say(f"\n✗ cannot reach the services ({type(unreachable).__name__}). Run `make up` first.")
            return 1
        raise
    say(
        "\nDemo passed: each pattern worked, and each boundary held. It added one ticket, two notes and one "
        "meeting (alice's calendar is disconnected again); `make down` deletes them with the rest of the data."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
