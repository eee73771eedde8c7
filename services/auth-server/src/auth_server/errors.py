"""OAuth error responses (RFC 6749 §5.2, RFC 8707, RFC 8693, RFC 7591) raised by the endpoints."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from oauth_tokens.database import RETRY_AFTER_SECONDS, DatabaseUnavailableError
from oauth_tokens.service_database import database_unavailable_response
from oauth_tokens.shared_state import SharedStateUnavailable

from auth_server.pages import error_page

logger = logging.getLogger(__name__)

# Routes answered with a JSON OAuth error; every other route is a page for people.
JSON_ERROR_PATHS = frozenset({"/token", "/revoke", "/register"})

# Token responses and errors must never be cached (RFC 6749 §5.1, §5.2).
NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An OAuth error the client receives as JSON: `error`, `error_description`, and an HTTP status.

    Descriptions are fixed texts written for the client; they never carry a secret, code or token.
    """

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status_code: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status_code = status_code
        self.headers = headers or {}


def invalid_client(realm: str) -> OAuthError:
    """401 with a Basic challenge (RFC 6749 §5.2); the same text whether the client exists or not."""
    return OAuthError(
        "invalid_client",
        "Client authentication failed",
        status_code=401,
        headers={"WWW-Authenticate": f'Basic realm="{realm}", charset="UTF-8"'},
    )


async def oauth_error_handler(request: Request, error: Exception) -> JSONResponse:
    """FastAPI exception handler turning OAuthError into its JSON body."""
    if not isinstance(error, OAuthError):  # registered for OAuthError only
        raise error
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status_code,
        headers={**NO_STORE_HEADERS, **error.headers},
    )


async def database_unavailable_handler(request: Request, error: Exception) -> Response:
    """503 + Retry-After while the database cannot be reached (never a 500): the shared OAuth JSON
    `temporarily_unavailable` (oauth_tokens.service_database) for the API endpoints, a page for the browser's
    routes (people sign in there, in this provider's look)."""
    if not isinstance(error, DatabaseUnavailableError):  # registered for DatabaseUnavailableError only
        raise error
    logger.warning("Database unavailable while serving %s %s", request.method, request.url.path)
    if request.url.path in JSON_ERROR_PATHS:
        response = database_unavailable_response("The service is temporarily unavailable")
        response.headers.update(NO_STORE_HEADERS)
        return response
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    brand = request.app.state.auth_server.config.page.brand()  # this provider's name and colour (pages.py)
    page = error_page(brand, "Try again later", "The service is temporarily unavailable. Try again in a moment.", 503)
    page.headers.update(retry)
    return page


async def shared_state_unavailable_handler(request: Request, error: Exception) -> JSONResponse:
    """Redis unreachable where the server must fail closed (a replay check): 503 temporarily_unavailable."""
    if not isinstance(error, SharedStateUnavailable):  # registered for SharedStateUnavailable only
        raise error
    unavailable = OAuthError(
        "temporarily_unavailable",
        "The server cannot check this request right now; retry later",
        status_code=503,
        headers={"Retry-After": str(error.retry_after)},
    )
    return await oauth_error_handler(request, unavailable)
