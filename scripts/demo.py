"""`make demo`: log in as a demo user and call one tool per pattern, narrating every hop; exit 1 if anything is off.

Runs against the topology `make up` started (settings from .env). It uses only what a real client has:
the official MCP SDK client with its OAuth provider (discovery, dynamic client registration,
authorization code + PKCE), driven headlessly through the auth server's login and consent pages.
Tokens and keys are never printed: only who called whom, with which kind of credential, for which
audience and scopes. Each run adds one ticket (crm-mcp has no tool to delete one) and says so; the
counts it prints tell earlier runs' tickets apart, and `make down` deletes the data.
"""

from __future__ import annotations

import functools
import sys

import anyio
import httpx2
from devkit.client_credential import method_phrase
from oauth_tokens.telemetry import configure_tracing, trace_http

from scripts.demo_episodes import (
    narrate_client_authentication,
    narrate_exchange,
    pattern4_third_party,
    pattern5_cross_app_access,
    pattern5_tools,
    step_up,
)
from scripts.demo_login import demo_dpop, demo_session, user_key
from scripts.demo_narration import DemoFailure, call, check, describe, narrate_dpop, say, validated
from scripts.topology import active_services, load_env

DEMO_TICKET_TITLE = "Demo: renewal question"
# From crm-api's demo data: alice's first customer, in Berlin. Patterns 1 and 2 run before pattern 3 lists her
# customers (the README's order), so the demo names them; pattern 3 then checks this one is hers.
DEMO_CUSTOMER = "cus_001"
DEMO_CITY = "Berlin"


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
    await narrate_client_authentication(env)
    say(f"\nLogging in as alice at {crm_mcp} (OAuth 2.1: discovery → dynamic registration → login → PKCE code → token)")
    dpop = demo_dpop(crm_mcp)
    if dpop:
        say("  DPoP (RFC 9449): crm-mcp takes only DPoP-bound tokens, so alice's client holds a key of its own;")
        say("  its token requests carry a proof, and every MCP request a fresh one (htm, htu, ath, jti once)")
    traced = functools.partial(trace_http, pattern="mcp_client", credential="user_token")
    async with demo_session(env, "alice", instrument=traced) as signed_in:
        alice = signed_in.client
        user = await validated(env, signed_in.access_token, [crm_mcp])
        say(f"  alice's token (validated with the shared package): {describe(user)}")
        if dpop:
            cnf = user.claims.get("cnf")
            check(
                isinstance(cnf, dict) and cnf.get("jkt") == user_key("alice").thumbprint,
                "alice's token is DPoP-bound to her client's key (cnf.jkt): stolen, it is useless without that key",
            )
        exchange = env["CRM_API_AUDIENCE"] not in user.audiences
        say(f"  CRM_API_AUTH_MODE={'exchange' if exchange else 'cascade'} (read off the token's aud)")

        say(f"\nPattern 1 — API key: get_weather {DEMO_CITY}")
        say(f"  crm-mcp ─(API key from its settings in a header; never shown)→ weather-api: {DEMO_CITY}")
        weather = await call(alice, "get_weather", {"city": DEMO_CITY})
        check(weather["city"] == DEMO_CITY, f"{weather['temperature_c']} °C, {weather['condition']}")

        say(f"\nPattern 2 — client credentials, MCP → MCP: list_customer_tickets {DEMO_CUSTOMER}")
        say(f"  crm-mcp ─({method_phrase(env)}; resource=tickets-mcp)→ auth-server: a token of crm-mcp's own")
        say("  crm-mcp ─(that token, aud=tickets-mcp, scope tickets:read tickets:write)→ tickets-mcp tool list_tickets")
        if dpop:
            say("  both DPoP-bound to crm-mcp's own key, a fresh proof on each request: tickets-mcp and crm-api take")
            say("  nothing else now (AUTH_DPOP=require), so each call below that succeeds was made with DPoP")
        say(f"  (crm-mcp first asks crm-api, as alice, whether {DEMO_CUSTOMER} is hers: its own token reads anyone's)")
        tickets = await call(alice, "list_customer_tickets", {"customer_id": DEMO_CUSTOMER})
        earlier = sum(t["title"] == DEMO_TICKET_TITLE for t in tickets)
        check(
            all(t["customer_id"] == DEMO_CUSTOMER for t in tickets),
            f"{len(tickets)} ticket(s) for {DEMO_CUSTOMER}"
            + (f", {earlier} of them opened by earlier make demo runs" if earlier else ""),
        )
        say("  open_ticket adds one ticket on every run (it stays: `make down` deletes the data)")
        ticket = await call(
            alice,
            "open_ticket",
            {"customer_id": DEMO_CUSTOMER, "title": DEMO_TICKET_TITLE, "description": "Opened by make demo"},
        )
        check(
            ticket["created_by_client"] == env["CRM_MCP_CLIENT_ID"],
            f"ticket {ticket['id']} created by client {ticket['created_by_client']} (from its token), "
            f"requested_by={ticket['requested_by']} (data)",
        )

        if exchange:
            check(user.audiences == (crm_mcp,), "the token names crm-mcp alone: passing it on to crm-api is useless")
            await narrate_exchange(env, signed_in.access_token, user)
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
        customer = next((c for c in customers if c["id"] == DEMO_CUSTOMER), None)
        if customer is None:
            raise DemoFailure(f"{DEMO_CUSTOMER} is not among alice's customers: crm-api's demo data is not seeded")
        noted = (await call(alice, "add_customer_note", {"customer_id": DEMO_CUSTOMER, "note": "make demo"}))["notes"]
        author, actor = noted[-1]["author"], noted[-1]["actor"]
        if exchange:
            check(
                author == "alice" and actor == env["CRM_MCP_CLIENT_ID"],
                f"add_customer_note (crm:write): crm-api recorded author={author} actor={actor} "
                "(the exchanged token's act claim: who acts for alice)",
            )
        else:
            check(
                author == "alice" and actor is None,
                f"add_customer_note (crm:write): crm-api recorded author={author} and no actor: in the cascade "
                "it gets alice's own token, which names no one acting for her",
            )

        say("\nComposite — customer_briefing: all three patterns at once")
        briefing = await call(alice, "customer_briefing", {"customer_id": DEMO_CUSTOMER})
        check(
            not briefing["unavailable"],
            f"customer ({'exchange' if exchange else 'cascade'}), open tickets (client credentials), weather (API key)",
        )
        # Which way crm-mcp gets calendar tokens, read off its answer (pattern 4 starts from no grant anyway).
        cross_app = "(cross-app access)" in (await call(alice, "disconnect_calendar", {}))["message"]

    say("\nBoundaries")
    async with demo_session(env, "bob") as bob:
        bobs = await call(bob.client, "search_customers", {"query": ""})
    check(
        not {c["id"] for c in bobs} & {c["id"] for c in customers},
        "bob sees his own customers, none of alice's",
    )
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            env["TICKETS_MCP_RESOURCE"],
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Authorization": f"Bearer {signed_in.access_token}"},
        )
    check(response.status_code == 401, "tickets-mcp refuses alice's token (wrong audience): no confused deputy")
    if dpop:
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.post(crm_mcp, json={}, headers={"Authorization": f"Bearer {signed_in.access_token}"})
        check(
            response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("DPoP "),
            "crm-mcp refuses alice's own token replayed without her key (as Bearer): a stolen copy is useless",
        )
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(
            env["CRM_API_URL"] + "/customers", headers={"Authorization": f"Bearer {signed_in.access_token}"}
        )
    if exchange:
        check(response.status_code == 401, "crm-api refuses alice's crm-mcp token sent straight to it: no passthrough")
    else:
        check(response.status_code == 200, "crm-api accepts alice's crm-mcp token sent straight to it (the cascade)")
    if cross_app:
        await pattern5_tools(env, DEMO_CUSTOMER)
    else:
        await pattern4_third_party(env, DEMO_CUSTOMER)
    await pattern5_cross_app_access(env, signed_in.access_token)
    await step_up(env, DEMO_CUSTOMER)
    if dpop:
        narrate_dpop(env)
        return
    other = "cascade" if exchange else "exchange"
    say(f"\nThe other way to crm-api: make down, then make up CRM_API_AUTH_MODE={other}, then make demo.")


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
