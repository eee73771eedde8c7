"""Pattern 4's browser side: the pages a URL-mode elicitation sends the user to, to connect their calendar.

    GET /connect/calendar?ref=…        spend the reference; sign the browser in at crm-mcp's own AS
    GET /connect/calendar/signed-in    check `state`, `iss`, then that the signed-in `sub` is the user whose
                                       tool call asked; only then redirect to the calendar provider
    GET /connect/calendar/callback     check `state`, `iss`; redeem the code; store the grant in the vault;
                                       tell a 2025-11-25 client its elicitation is complete

The elicitation URL is not pre-authenticated: whoever opens it must sign in at crm-mcp's authorization
server (authorization code + PKCE, crm-mcp as the confidential web client CRM_MCP_CONNECT_CLIENT_ID), and a
`sub` other than the one that triggered the elicitation ends the flow. That is the specification's rule
against phishing: an attacker who sends their own connect link to a victim cannot get the victim's
calendar attached to the attacker's account. Every refusal is a plain page; nothing is stored.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from html import escape
from urllib.parse import urlencode

import httpx2
from oauth_tokens import AccessTokenValidator, InvalidTokenError, KeySourceError, TokenEndpointError
from oauth_tokens.discovery import discover_endpoint
from oauth_tokens.pages import PAGE_CSP, PageBrand, html_document
from oauth_tokens.token_endpoint import TokenEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from crm_mcp.client_identity import ClientCredential
from crm_mcp.downstream import DownstreamError
from crm_mcp.settings import Settings
from crm_mcp.third_party_calendar.accounts import CalendarAccounts
from crm_mcp.third_party_calendar.connect_requests import (
    CHECKING,
    CONSENTING,
    SIGNING_IN,
    ConnectRequests,
    FlowStep,
    pkce_pair,
)
from crm_mcp.third_party_calendar.elicitation_complete import ElicitationCompletions
from crm_mcp.third_party_calendar.provider import CalendarProvider

logger = logging.getLogger(__name__)

CONNECT_PATH = "/connect/calendar"
SIGNED_IN_PATH = "/connect/calendar/signed-in"
BROWSER_COOKIE = "crm_mcp_connect"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # The callback URLs carry authorization codes: never pass them on in a Referer.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": PAGE_CSP,
}
# The same look as the authorization servers' pages (oauth_tokens.pages), under crm-mcp's own name.
BRAND = PageBrand("crm-mcp · connect your calendar", footer="crm-mcp is the MCP server your MCP client talks to.")
CONNECTED = "Your calendar is connected. You can close this tab and go back to your MCP client."


class Refused(Exception):
    """A step of the flow is refused; the message is what the user reads (never a token or a name)."""


def page(title: str, message: str, status_code: int = 200) -> HTMLResponse:
    """A one-message page: a success note for 2xx, an alert otherwise."""
    kind = "success" if status_code < 400 else "error"
    role = "status" if kind == "success" else "alert"
    body = f'<h1>{escape(title)}</h1>\n<p class="{kind}" role="{role}">{escape(message)}</p>'
    return HTMLResponse(html_document(title, body, BRAND), status_code=status_code, headers=PAGE_HEADERS)


class CalendarConnect:
    """The three connect routes, bound to the settings, the pending connections and the vault."""

    def __init__(
        self,
        settings: Settings,
        requests: ConnectRequests,
        accounts: CalendarAccounts,
        provider: CalendarProvider,
        validator: AccessTokenValidator,
        credential: ClientCredential,
        completions: ElicitationCompletions,
    ) -> None:
        self._settings = settings
        self._completions = completions
        self._requests = requests
        self._accounts = accounts
        self._provider = provider
        self._validator = validator
        self._timeout = settings.crm_mcp_downstream_timeout_seconds
        self._authorization_endpoint: str | None = None
        self._signed_in_uri = settings.crm_mcp_public_url + SIGNED_IN_PATH
        # crm-mcp's web client at its own authorization server: AUTH_TOKEN_URL, else from RFC 8414 metadata.
        self._sign_in = TokenEndpoint(
            settings.auth_token_url,
            settings.crm_mcp_connect_client_id,
            **credential.token_endpoint_arguments(),
            timeout_seconds=self._timeout,
            discover_token_url=self.own_token_endpoint,
        )

    async def own_token_endpoint(self) -> str:
        """crm-mcp's own authorization server's token endpoint, from its RFC 8414 metadata."""
        return await self._own_metadata("token_endpoint", through_base=True)

    async def _own_authorization_endpoint(self) -> str:
        """Where the browser signs in: the authorization endpoint crm-mcp's own AS advertises (RFC 8414)."""
        if self._authorization_endpoint is None:
            self._authorization_endpoint = await self._own_metadata("authorization_endpoint", through_base=False)
        return self._authorization_endpoint

    async def _own_metadata(self, field: str, *, through_base: bool) -> str:
        settings = self._settings
        async with httpx2.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            return await discover_endpoint(
                settings.auth_discovery_url or settings.auth_issuer,
                client,
                field,
                timeout_seconds=self._timeout,
                expected_issuers=(settings.auth_issuer, *settings.auth_issuer_aliases),
                through_base=through_base,
            )

    def connect_url(self, reference: str) -> str:
        """The URL a tool elicits: the reference and nothing else."""
        return f"{self._settings.crm_mcp_public_url}{CONNECT_PATH}?{urlencode({'ref': reference})}"

    async def start(self, request: Request) -> Response:
        try:  # before the link is claimed: if the sign-in cannot start, the link still works later
            authorize = await self._own_authorization_endpoint()
        except KeySourceError:
            return page("Sign-in unavailable", "The sign-in service cannot be reached; try again later.", 503)
        state = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        claimed = await self._requests.claim(request.query_params.get("ref", ""), state, verifier)
        if claimed is None:
            return page("Link not valid", "This connect link is unknown, expired or already used. Ask again.", 400)
        browser, _ = claimed
        query = {
            "response_type": "code",
            "client_id": self._settings.crm_mcp_connect_client_id,
            "redirect_uri": self._signed_in_uri,
            "scope": "crm:read",
            "resource": self._settings.crm_mcp_resource,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        response = RedirectResponse(f"{authorize}?{urlencode(query)}", status_code=303)
        response.headers.update(PAGE_HEADERS)
        response.set_cookie(
            BROWSER_COOKIE,
            browser,
            max_age=int(self._requests.lifetime_seconds),
            path=CONNECT_PATH,
            secure=self._settings.crm_mcp_public_url.startswith("https://"),
            httponly=True,
            samesite="lax",
        )
        return response

    async def signed_in(self, request: Request) -> Response:
        step = await self._requests.take(request.cookies.get(BROWSER_COOKIE, ""), SIGNING_IN, CHECKING)
        try:
            if step is None:
                raise Refused("This sign-in does not belong to a connection started in this browser.")
            code = _checked_redirect(request, step, self._settings.auth_issuer)
            subject = await self._signed_in_subject(code, step.code_verifier)
            if subject != step.subject:
                logger.warning("Connect link of one user opened by another: refused, link discarded")
                raise Refused("You signed in as a different user than the one who asked to connect a calendar.")
        except (Refused, DownstreamError) as refused:
            if step is not None:
                await self._requests.discard(step.request_id)
            return page("Calendar not connected", str(refused), 400)
        state = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        await self._requests.expect(step.request_id, CONSENTING, state, verifier)
        response = RedirectResponse(self._provider.authorization_url(state, challenge), status_code=303)
        response.headers.update(PAGE_HEADERS)
        return response

    async def callback(self, request: Request) -> Response:
        step = await self._requests.take(request.cookies.get(BROWSER_COOKIE, ""), CONSENTING, None)
        try:
            if step is None:
                raise Refused("This answer from the calendar does not belong to a connection in progress here.")
            code = _checked_redirect(request, step, self._provider.issuer)
            grant = await self._provider.redeem_code(code, step.code_verifier)
        except (Refused, DownstreamError) as refused:
            return page("Calendar not connected", str(refused), 400)
        await self._accounts.connect(step.subject, grant)
        await self._completions.complete(step.request_id)  # a 2025-11-25 client may retry now
        response = page("Calendar connected", CONNECTED)
        response.delete_cookie(BROWSER_COOKIE, path=CONNECT_PATH)
        return response

    async def _signed_in_subject(self, code: str, code_verifier: str) -> str:
        """Redeem the sign-in code at crm-mcp's own AS and validate the token like any other: its `sub`."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._signed_in_uri,
            "code_verifier": code_verifier,
        }
        try:
            answer = await self._sign_in.request(form, secrets=(code, code_verifier))
        except KeySourceError as exc:
            raise DownstreamError("The sign-in service could not be found; try again later.") from exc
        except TokenEndpointError as exc:
            if exc.error == "temporarily_unavailable":
                raise DownstreamError("The sign-in service did not answer; try again later.") from exc
            raise Refused("The sign-in could not be completed; open the link from your MCP client again.") from exc
        try:
            principal = await self._validator.validate(answer.access_token)
        except (InvalidTokenError, ValueError, KeyError) as exc:
            raise Refused("The sign-in could not be verified.") from exc
        return principal.subject

    async def aclose(self) -> None:
        await self._sign_in.aclose()


def _checked_redirect(request: Request, step: FlowStep, issuer: str) -> str:
    """The code of an authorization response whose `state` and RFC 9207 `iss` are the ones expected."""
    params = request.query_params
    if not hmac.compare_digest(params.get("state", ""), step.state):
        raise Refused("The answer does not match the request (state). Nothing was stored.")
    if params.get("iss") != issuer:
        raise Refused("The answer came from an unexpected authorization server (iss). Nothing was stored.")
    if "error" in params or not params.get("code"):
        raise Refused("Access was not granted. Nothing was stored.")
    return params["code"]
