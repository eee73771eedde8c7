"""`make demo`'s longer episodes: the exchange hop (3b), pattern 4's connect-and-schedule, pattern 5's ID-JAG
hops (and its tools when crm-mcp runs in that mode), and a step-up."""

from __future__ import annotations

from typing import Any

import httpx2
import jwt
from devkit.client_credential import NoClientKey, auth_method, crm_mcp_credential, method_phrase
from devkit.headless_login import HeadlessBrowser, open_in_browser
from mcp.types import ElicitRequestURLParams, ElicitResult
from oauth_tokens import AccessTokenValidator, Principal, TokenEndpointError, TokenExchange, ValidatorConfig
from oauth_tokens.dpop_client import DPoPKey, DPoPTokenAuth
from oauth_tokens.id_jag import CrossAppAccess, redeem_id_jag
from oauth_tokens.token_endpoint import TokenEndpoint

from scripts.demo_login import calendar_dpop, demo_dpop, demo_session
from scripts.demo_narration import DemoFailure, call, check, describe, say, validated
from scripts.topology import Workspace


async def narrate_exchange(env: dict[str, str], user_token: str, user: Principal) -> None:
    """Pattern 3b's hop, shown by doing what crm-mcp does (its credentials from .env; no token is printed)."""
    crm_api = env["CRM_API_AUDIENCE"]
    say("\nPattern 3b — token exchange (RFC 8693): search_customers")
    say("  client ─(alice's token)→ crm-mcp; alice's token goes no further than the auth-server:")
    method = auth_method(env)
    say(f"  crm-mcp ─(client {env['CRM_MCP_CLIENT_ID']}, {method}; subject_token=alice's token; resource={crm_api};")
    say("           scope=crm:read, only what this tool needs)→ auth-server /token")
    try:
        credential = crm_mcp_credential(env, workspace=Workspace.from_environment().directory)
    except NoClientKey as missing:  # e.g. crm-mcp runs in a container: its key stays there
        say(f"  (not repeated here: {missing}; crm-mcp performed it for the search above)")
        return
    dpop = demo_dpop(env["CRM_MCP_RESOURCE"])  # then crm-mcp binds its exchanged tokens (CRM_MCP_DPOP): so here
    exchange = TokenExchange(
        env.get("AUTH_TOKEN_URL") or f"{env['AUTH_ISSUER']}/token",
        env["CRM_MCP_CLIENT_ID"],
        **credential,
        dpop_key=DPoPKey() if dpop else None,
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
    if dpop:
        check("jkt" in issued.claims.get("cnf", {}), "DPoP-bound to crm-mcp's key (cnf.jkt): useless to anyone else")
    say("  crm-mcp ─(the exchanged token; cached per user token and scope until shortly before it ends)→ crm-api")


async def narrate_client_authentication(env: dict[str, str]) -> None:
    """Which method each of crm-mcp's clients uses, and (private_key_jwt) the public keys it publishes."""
    say("\nClient authentication — how crm-mcp proves who it is at the token endpoints")
    say(
        f"  {env['CRM_MCP_CLIENT_ID']} (patterns 2, 3b) and crm-mcp-connect (pattern 4's sign-in): {method_phrase(env)}"
    )
    say(f"  {env['CALENDAR_CLIENT_ID']} at the calendar's auth-server (pattern 4): {method_phrase(env, calendar=True)}")
    if "private_key_jwt" not in (auth_method(env), auth_method(env, calendar=True)):
        return
    jwks_url = f"{env['CRM_MCP_PUBLIC_URL']}/.well-known/jwks.json"
    async with httpx2.AsyncClient(timeout=10) as http:
        keys = (await http.get(jwks_url)).json().get("keys", [])
    public_only = all(not {"d", "p", "q", "k"} & set(key) for key in keys)
    check(bool(keys) and public_only, f"crm-mcp publishes {len(keys)} public key(s) at {jwks_url}, no private part")
    say("  the auth-servers fetch them there (jwks_uri) when first needed; .env holds no client secret for crm-mcp")


async def step_up(env: dict[str, str], customer_id: str) -> None:
    """alice consents to crm:read only; adding a note makes the SDK client step up (no 403 handling here)."""
    crm_mcp = env["CRM_MCP_RESOURCE"]
    say("\nStep-up — a client that consented to less: alice grants crm:read only, then adds a note")
    say('  crm-mcp answers add_customer_note with 403 insufficient_scope, scope="crm:write", before the tool runs;')
    say("  the SDK client logs alice in again, asking for its first request plus crm:write (SEP-2350), and retries")
    async with demo_session(env, "alice", scope="crm:read") as alice:
        await call(alice.client, "get_customer", {"customer_id": customer_id})
        before = await validated(env, alice.access_token, [crm_mcp])
        check(before.scopes == {"crm:read"}, "alice's first token: scope crm:read only")
        noted = await call(
            alice.client, "add_customer_note", {"customer_id": customer_id, "note": "Added by make demo"}
        )
        after = await validated(env, alice.access_token, [crm_mcp])
    check(
        {"crm:read", "crm:write"} <= after.scopes and any(n["text"] == "Added by make demo" for n in noted["notes"]),
        f"note added after the step-up; the new token: scope={' '.join(sorted(after.scopes))}",
    )


async def pattern4_third_party(env: dict[str, str], customer_id: str) -> None:
    """Pattern 4: connect alice's calendar through a URL-mode elicitation, schedule a meeting, disconnect."""
    say("\nPattern 4 — the user's own account at a third party: schedule_meeting in alice's calendar")
    say("  calendar-api trusts only its own authorization server (its own users, keys and issuer)")
    bound = calendar_dpop(env["CALENDAR_API_URL"])
    if bound:
        say("  and takes only DPoP-bound tokens (CALENDAR_AUTH_DPOP=require); its auth-server issues nothing else")
        say("  (CALENDAR_AUTH_SERVER_DPOP=require): so every calendar call below that succeeds was made with DPoP")
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
        say(f"  crm-mcp redeemed the code as a confidential client ({method_phrase(env, calendar=True)});")
        if bound:
            say("  with a DPoP proof by crm-mcp's own key: the calendar's tokens are bound to it (cnf.jkt)")
        say("  the tokens are in its vault, AES-GCM encrypted" + (", with their binding" if bound else ""))
        return ElicitResult(action="accept")

    async with demo_session(env, "alice", elicitation_callback=alice_at_the_keyboard) as signed_in:
        alice = signed_in.client
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
    if bound:
        say("  calendar-api took those calls: the grant crm-mcp redeemed (and refreshes) with its proofs is DPoP-bound")


async def pattern5_cross_app_access(env: dict[str, str], user_token: str) -> None:
    """Pattern 5's two hops, shown by doing what crm-mcp does in CALENDAR_AUTH_MODE=cross-app-access (its
    credentials from .env; no token or assertion is printed), then the calendar call they allow."""
    calendar_as, resource = env["CALENDAR_AUTH_ISSUER"], env["CALENDAR_API_AUDIENCE"]
    say("\nPattern 5 — enterprise-managed cross-app access (SEP-990): alice's calendar with no browser step")
    say(f"  crm-mcp ─(client {env['CRM_MCP_CLIENT_ID']}, {auth_method(env)}; subject_token=alice's token;")
    say(f"           requested_token_type=id-jag; audience={calendar_as}; resource={resource})→ auth-server /token")
    idp_url = env.get("AUTH_TOKEN_URL") or f"{env['AUTH_ISSUER']}/token"
    calendar_url = env.get("CALENDAR_TOKEN_URL") or f"{calendar_as}/token"
    # crm-mcp's credentials at each server, as it holds them (its key, or a secret from .env).
    try:
        workspace = Workspace.from_environment().directory  # a relative CRM_MCP_DATA_DIR is relative to it
        own = crm_mcp_credential(env, workspace=workspace)
        calendar = crm_mcp_credential(env, calendar=True, workspace=workspace)
    except NoClientKey as missing:  # e.g. crm-mcp runs in a container: its key stays there
        say(f"  (not repeated here: {missing})")
        return
    # Under DPoP crm-mcp binds the calendar token to its key: a stand-in key here, for this run.
    key = DPoPKey() if calendar_dpop(env["CALENDAR_API_URL"]) else None
    access = CrossAppAccess(
        TokenEndpoint(idp_url, env["CRM_MCP_CLIENT_ID"], **own),
        TokenEndpoint(calendar_url, env["CALENDAR_CLIENT_ID"], **calendar, dpop_key=key),
        audience=calendar_as,
        resource=resource,
    )
    try:
        id_jag = await access.id_jag(user_token)
        header, claims = (
            jwt.get_unverified_header(id_jag.assertion),
            jwt.decode(id_jag.assertion, options={"verify_signature": False}),
        )
        check(
            header.get("typ") == "oauth-id-jag+jwt"
            and (claims["sub"], claims["aud"], claims["client_id"])
            == ("alice", calendar_as, env["CALENDAR_CLIENT_ID"]),
            f"the IdP's policy allows it: an ID-JAG (typ {header.get('typ')}), sub={claims['sub']} aud={claims['aud']} "
            f"client_id={claims['client_id']} scope={claims['scope']}, valid {claims['exp'] - claims['iat']} s",
        )
        method = auth_method(env, calendar=True)
        proof = "; a DPoP proof by crm-mcp's key" if key is not None else ""
        client = env["CALENDAR_CLIENT_ID"]
        say(f"  crm-mcp ─(client {client}, {method}; grant_type=jwt-bearer; assertion=the ID-JAG{proof})")
        say("           → calendar-auth-server /token: checks the IdP's signature, aud, client_id, maps sub, jti once")
        answer = await redeem_id_jag(access.authorization_server, id_jag)
        trust = ValidatorConfig(
            issuers=[calendar_as], audiences=[resource], jwks_url=env.get("CALENDAR_AUTH_JWKS_URL") or None
        )
        async with AccessTokenValidator(trust) as validator:
            calendar_user = await validator.validate(answer.access_token)
        check(calendar_user.subject == "alice", f"a calendar token, no consent page: {describe(calendar_user)}")
        if key is not None:
            check(
                calendar_user.claims.get("cnf") == {"jkt": key.thumbprint},
                "DPoP-bound to crm-mcp's key (cnf.jkt, token_type DPoP): useless to anyone else",
            )
        try:
            await redeem_id_jag(access.authorization_server, id_jag)
        except TokenEndpointError as replay:
            check(replay.error == "invalid_grant", "the same ID-JAG presented again is refused (jti replay)")
        else:
            raise DemoFailure("a replayed ID-JAG was accepted")
        events_url = f"{env['CALENDAR_API_URL']}/events"
        as_bearer = httpx2.Headers({"Authorization": f"Bearer {answer.access_token}"})
        async with httpx2.AsyncClient(timeout=10) as http:
            if key is not None:
                stolen = await http.get(events_url, headers=as_bearer)
                check(stolen.status_code == 401, "calendar-api refuses it sent as Bearer, without the key's proof")
                events = await http.get(events_url, auth=DPoPTokenAuth(key, answer.access_token))
            else:
                events = await http.get(events_url, headers=as_bearer)
        with_proof = " with a fresh proof" if key is not None else ""
        check(
            events.status_code == 200,
            f"calendar-api accepts it{with_proof}: {len(events.json()['events'])} meeting(s) of alice's",
        )
    finally:
        await access.aclose()
    say("  crm-mcp's calendar tools work this way with CALENDAR_AUTH_MODE=cross-app-access (docs/cross-app-access.md)")


async def pattern5_tools(env: dict[str, str], customer_id: str) -> None:
    """With crm-mcp itself in cross-app mode: schedule_meeting and list_my_meetings, never an elicitation."""
    say("\nPattern 5 through crm-mcp (CALENDAR_AUTH_MODE=cross-app-access): schedule_meeting, no elicitation")
    asked: list[Any] = []

    async def no_elicitation(context: Any, params: Any) -> ElicitResult:
        asked.append(params)
        return ElicitResult(action="decline")

    async with demo_session(env, "alice", elicitation_callback=no_elicitation) as signed_in:
        alice = signed_in.client
        meeting = await call(
            alice,
            "schedule_meeting",
            {"customer_id": customer_id, "start": "2026-12-02T10:00:00+00:00", "minutes": 30, "title": "Demo call"},
        )
        meetings = await call(alice, "list_my_meetings", {})
    check(not asked, "no elicitation: the IdP vouched for alice, the admin's policy allowed it")
    check(any(m["id"] == meeting["id"] for m in meetings), f"meeting {meeting['id']} in alice's own calendar")
