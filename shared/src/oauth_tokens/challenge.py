"""RFC 6750 §3 `WWW-Authenticate: Bearer` challenges, shared by the FastAPI and MCP adapters."""

from __future__ import annotations

from starlette.responses import JSONResponse

__all__ = ["INVALID_TOKEN_DESCRIPTION", "MISSING_TOKEN_DESCRIPTION", "bearer_challenge", "bearer_error_response"]

# Clients get one generic description; the precise reason is logged at DEBUG by the validator.
INVALID_TOKEN_DESCRIPTION = "The access token is invalid or expired"  # noqa: S105 - not a secret
MISSING_TOKEN_DESCRIPTION = "A bearer access token is required"  # noqa: S105 - not a secret


def _quoted(value: str) -> str:
    """An RFC 7235 quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(realm: str | None = None, **params: str | None) -> str:
    """A `Bearer ...` challenge: realm first, then the given attributes in order (None ones left out).

    A request without credentials gets no `error` attribute (RFC 6750 §3.1): pass none then.
    """
    attributes = [("realm", realm), *params.items()]
    present = [(name, value) for name, value in attributes if value]
    if not present:
        return "Bearer"
    return "Bearer " + ", ".join(f"{name}={_quoted(value)}" for name, value in present)


def bearer_error_response(status_code: int, challenge: str, error: str, description: str) -> JSONResponse:
    """A 401/403 with `challenge` in WWW-Authenticate and the same error as JSON; never cached."""
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status_code,
        headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
    )
