"""Authorization endpoint: validate the request, sign the user in, ask consent, redirect with code + iss."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from auth_server.clients import Client, UnusableClient
from auth_server.codes import AuthorizationGrant
from auth_server.config_sections import GRANT_AUTHORIZATION_CODE
from auth_server.errors import OAuthError
from auth_server.limits import BodyTooLarge, RateLimited, client_address, read_body
from auth_server.pages import (
    LOGIN_FAILED,
    LOGIN_REFUSED,
    PAGE_HEADERS,
    RequestSummary,
    consent_page,
    error_page,
    login_page,
)
from auth_server.pending import BROWSER_COOKIE, PendingAuthorization
from auth_server.policy import allowed_scopes, select_resource, select_scopes
from auth_server.state import AuthServer, server_of
from auth_server.users import TooManyFailures

logger = logging.getLogger(__name__)
router = APIRouter()

# S256 challenges are BASE64URL(SHA-256): exactly 43 characters.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")  # RFC 7638 SHA-256 thumbprint, base64url


class _Redirect(Exception):
    """An error the client must receive at its (already validated) redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.error)
        self.error = error


def _redirect(server: AuthServer, redirect_uri: str, params: dict[str, str], status_code: int) -> Response:
    """Redirect to `redirect_uri` with `params` and the RFC 9207 `iss`, keeping its own query."""
    parts = urlsplit(redirect_uri)
    added = urlencode([*params.items(), ("iss", server.issuer)])
    query = f"{parts.query}&{added}" if parts.query else added  # the registered query stays byte-for-byte
    location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return RedirectResponse(location, status_code=status_code, headers={"Cache-Control": "no-store"})


def _single_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Query parameters; RFC 6749 §3.1: empty means absent, and none may repeat (except resource)."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name == "resource" or value == "":
            continue
        if name in params:
            raise OAuthError("invalid_request", f"Parameter {name} is repeated")
        params[name] = value
    return params


def _summary(
    server: AuthServer, pending: PendingAuthorization, client: Client, step: str, nonce: str
) -> RequestSummary:
    resource = server.config.resources[pending.resource]
    target = urlsplit(pending.redirect_uri)
    return RequestSummary(
        request_id=pending.request_id,
        csrf_token=server.csrf.value(step, pending.request_id, nonce),
        client_name=client.name,
        client_id=client.client_id,
        client_verified=not client.dynamically_registered,
        client_host=(urlsplit(client.client_id).hostname or "") if client.from_metadata_document else "",
        resource_description=resource.description,
        resource_identifier=resource.identifier,
        scopes=pending.scopes,
        return_to=f"{target.scheme}://{target.netloc}",
        scope_descriptions=server.config.scope_descriptions,
        brand=server.config.page.brand(),
    )


def _try_again_later(server: AuthServer, message: str, status_code: int, retry_after: int) -> Response:
    page = error_page(server.config.page.brand(), "Try again later", message, status_code=status_code)
    page.headers["Retry-After"] = str(retry_after)
    return page


@router.get("/authorize")
async def authorize(request: Request) -> Response:
    server = server_of(request)
    try:
        await server.authorize_rate.check(client_address(request))
    except RateLimited as limited:
        return _try_again_later(
            server, "Too many requests from your address. Try again in a minute.", 429, limited.retry_after
        )
    pairs = list(request.query_params.multi_items())
    try:
        params = _single_params(pairs)
    except OAuthError as error:
        return error_page(server.config.page.brand(), "Invalid request", error.description)
    client_id = params.get("client_id", "")
    try:
        client = await server.clients.find(client_id, address=client_address(request))
    except UnusableClient as unusable:  # its metadata document: never redirect to URIs it did not vouch for
        return error_page(
            server.config.page.brand(),
            "Application not accepted",
            f"The application {client_id} cannot be used: {unusable}.",
        )
    if client is None:
        return error_page(
            server.config.page.brand(), "Unknown application", "The application (client_id) is not registered here."
        )
    requested_redirect = params.get("redirect_uri")
    if requested_redirect is None and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    elif requested_redirect is not None and client.accepts_redirect_uri(requested_redirect):
        redirect_uri = requested_redirect
    else:
        return error_page(
            server.config.page.brand(),
            "Invalid redirect URI",
            "The redirect_uri is not registered for this application.",
        )
    state = params.get("state")
    try:
        pending = await _validate(server, request, client, params, pairs, redirect_uri, requested_redirect is not None)
    except _Redirect as refused:
        extra = {"state": state} if state is not None else {}
        body = {"error": refused.error.error, "error_description": refused.error.description, **extra}
        return _redirect(server, redirect_uri, body, status_code=302)
    nonce = request.cookies.get(BROWSER_COOKIE) or server.csrf.new_browser_nonce()
    response = login_page(_summary(server, pending, client, "login", nonce))
    response.set_cookie(
        BROWSER_COOKIE,
        nonce,
        max_age=3600,
        path="/authorize",
        secure=server.issuer.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


async def _validate(
    server: AuthServer,
    request: Request,
    client: Client,
    params: dict[str, str],
    pairs: list[tuple[str, str]],
    redirect_uri: str,
    redirect_uri_in_request: bool,
) -> PendingAuthorization:
    """The checks whose failures go back to the client; the pending request if all pass."""
    response_type = params.get("response_type")
    if response_type is None:
        raise _Redirect(OAuthError("invalid_request", "response_type is required"))
    if response_type != "code":
        raise _Redirect(OAuthError("unsupported_response_type", "Only the authorization code flow is supported"))
    if GRANT_AUTHORIZATION_CODE not in client.grant_types:
        raise _Redirect(OAuthError("unauthorized_client", "This client may not use the authorization code grant"))
    if params.get("code_challenge_method") != "S256":
        raise _Redirect(OAuthError("invalid_request", "PKCE is required with code_challenge_method=S256"))
    challenge = params.get("code_challenge", "")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise _Redirect(OAuthError("invalid_request", "code_challenge must be a 43-character S256 challenge"))
    if "request" in params or "request_uri" in params:
        raise _Redirect(OAuthError("request_not_supported", "Request objects are not supported"))
    resources = [value for name, value in pairs if name == "resource" and value]
    try:
        resource = select_resource(server.config, client, resources)
        scopes = select_scopes(params.get("scope"), allowed_scopes(server.config, client, resource))
    except OAuthError as error:
        raise _Redirect(error) from None
    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not _JKT.fullmatch(dpop_jkt):
        raise _Redirect(OAuthError("invalid_request", "dpop_jkt must be a base64url SHA-256 JWK thumbprint"))
    return await server.pending.create(
        address=client_address(request),
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        redirect_uri_in_request=redirect_uri_in_request,
        state=params.get("state"),
        code_challenge=challenge,
        resource=resource,
        scopes=scopes,
        dpop_jkt=dpop_jkt,
    )


def _expired(server: AuthServer) -> Response:
    return error_page(
        server.config.page.brand(),
        "Sign-in expired",
        "This sign-in page has expired. Start again from your application.",
    )


async def _checked_form(
    server: AuthServer, request: Request, step: str
) -> tuple[dict[str, str], PendingAuthorization, Client] | Response:
    """The posted form and the pending request it belongs to, if its CSRF value matches this browser; else a page."""
    try:
        body = await read_body(request)
    except BodyTooLarge:
        return error_page(
            server.config.page.brand(),
            "Form too large",
            "The form sent is too large. Start again from your application.",
            status_code=413,
        )
    form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    pending = await server.pending.get(form.get("request_id", ""))
    try:
        client = await server.clients.find(pending.client_id, address=client_address(request)) if pending else None
    except UnusableClient:  # its metadata document changed or vanished mid-sign-in (logged by the lookup)
        client = None
    if pending is None or client is None or not client.accepts_redirect_uri(pending.redirect_uri):
        return _expired(server)
    nonce = request.cookies.get(BROWSER_COOKIE)
    if not server.csrf.is_valid(form.get("csrf_token", ""), step, pending.request_id, nonce):
        return error_page(
            server.config.page.brand(),
            "Form not accepted",
            "This form was not issued to this browser (are cookies enabled?). Start again from your application.",
            status_code=403,
        )
    return form, pending, client


@router.post("/authorize/login")
async def login(request: Request) -> Response:
    server = server_of(request)
    try:  # per address, so one address cannot fill the failed-login table alone
        await server.login_rate.check(client_address(request))
    except RateLimited as limited:
        return _try_again_later(
            server, "Too many sign-in attempts from your address. Try again in a minute.", 429, limited.retry_after
        )
    checked = await _checked_form(server, request, "login")
    if isinstance(checked, Response):
        return checked
    form, pending, client = checked
    nonce = request.cookies.get(BROWSER_COOKIE, "")
    username = form.get("username", "").strip()
    address = client_address(request)
    try:
        delay = await server.throttle.begin_attempt(username, address)  # counted as a failure until it succeeds
    except TooManyFailures as refused:
        logger.info("Login refused (too many failures) for client %s from %s", client.client_id, address)
        summary = _summary(server, pending, client, "login", nonce)
        page = login_page(summary, username=username, error=LOGIN_REFUSED, status_code=429)
        page.headers["Retry-After"] = str(refused.retry_after)
        return page
    if delay:
        await anyio.sleep(delay)
    user = await server.users.verify(username, form.get("password", ""))
    if user is None:
        logger.info("Failed login for client %s from %s", client.client_id, address)
        return login_page(_summary(server, pending, client, "login", nonce), username=username, error=LOGIN_FAILED)
    await server.throttle.record_success(username, address)
    await server.pending.sign_in(pending, user.username)
    logger.info("User %s signed in for client %s", user.username, client.client_id)
    summary = _summary(server, pending, client, "consent", nonce)
    return consent_page(summary, user_name=user.name, username=user.username)


@router.post("/authorize/consent")
async def consent(request: Request) -> Response:
    server = server_of(request)
    checked = await _checked_form(server, request, "consent")
    if isinstance(checked, Response):
        return checked
    form, pending, client = checked
    if pending.subject is None:
        return _expired(server)
    if not await server.pending.take(pending.request_id):  # one decision per request, across replicas
        return _expired(server)
    state = {"state": pending.state} if pending.state is not None else {}
    if form.get("decision") != "approve":
        logger.info("User %s denied client %s", pending.subject, client.client_id)
        denied = {"error": "access_denied", "error_description": "The user denied the request", **state}
        return _redirect(server, pending.redirect_uri, denied, status_code=303)
    code = await server.codes.issue(
        AuthorizationGrant(
            client_id=client.client_id,
            subject=pending.subject,
            resource=pending.resource,
            scopes=pending.scopes,
            redirect_uri=pending.redirect_uri,
            redirect_uri_in_request=pending.redirect_uri_in_request,
            code_challenge=pending.code_challenge,
            dpop_jkt=pending.dpop_jkt,
        )
    )
    logger.info("User %s approved client %s for resource %s", pending.subject, client.client_id, pending.resource)
    response = _redirect(server, pending.redirect_uri, {"code": code, **state}, status_code=303)
    response.headers["Referrer-Policy"] = PAGE_HEADERS["Referrer-Policy"]
    return response
