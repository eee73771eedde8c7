"""OAuth error responses (RFC 6749 §5.2, RFC 8707, RFC 8693, RFC 7591) raised by the endpoints."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from oauth_tokens.shared_state import SharedStateUnavailable

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
