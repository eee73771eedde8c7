"""Exception hierarchy of oauth_tokens: what can go wrong validating or obtaining a token."""

from __future__ import annotations


class OAuthTokensError(Exception):
    """Base class of every error raised by oauth_tokens."""


class SettingsError(OAuthTokensError):
    """A required setting is missing or invalid; the message names the variable, never its value."""


class InvalidTokenError(OAuthTokensError):
    """The access token is missing, malformed, expired or not trusted (HTTP 401, error="invalid_token").

    `reason` is the detailed cause for DEBUG logs; it never contains the token itself.
    Clients only ever see a generic description.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingTokenError(InvalidTokenError):
    """The request carries no bearer token at all (HTTP 401 without an error code, RFC 6750 §3.1)."""


class SigningKeyUnavailableError(InvalidTokenError):
    """No trusted signing key matches the token (unknown kid, or the JWKS could not be fetched)."""


class KeySourceUnavailableError(SigningKeyUnavailableError):
    """The kid is not in the cached keys and the key source failed (JWKS or discovery down, bad answer).

    The token may well be valid: every resource server answers 503 and asks to retry, not 401.
    A plain SigningKeyUnavailableError means the JWKS endpoint answered and has no such kid.
    `retry_after_seconds` is when the key source will next be tried (None: unknown).
    """

    def __init__(self, reason: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_seconds = retry_after_seconds


class KeySourceError(OAuthTokensError):
    """Discovery metadata or a JWKS could not be fetched or made no sense (an operational failure)."""


class DeadlineExceededError(OAuthTokensError, TimeoutError):
    """An outbound call (connect, send and every read together) took longer than its total deadline.

    The message names the party that did not answer, so an error blames the right service.
    """

    def __init__(self, service: str, seconds: float) -> None:
        self.service = service
        self.seconds = seconds
        super().__init__(f"{service} did not answer within {seconds:g} s")


class InsufficientScopeError(OAuthTokensError):
    """The token is valid but lacks required scopes (HTTP 403, error="insufficient_scope")."""

    def __init__(self, required: tuple[str, ...], missing: tuple[str, ...] | None = None) -> None:
        self.required = tuple(required)
        self.missing = tuple(missing) if missing is not None else self.required
        super().__init__(f"Missing required scope(s): {' '.join(self.missing)}")


class TokenEndpointError(OAuthTokensError):
    """The token endpoint refused or failed a token request; carries the OAuth error code, never a secret."""

    def __init__(self, error: str, description: str | None = None, status_code: int | None = None) -> None:
        self.error = error
        self.description = description
        self.status_code = status_code
        status = f" (HTTP {status_code})" if status_code is not None else ""
        detail = f": {description}" if description else ""
        super().__init__(f"Token endpoint error {error}{status}{detail}")

    def __repr__(self) -> str:
        return (
            f"TokenEndpointError(error={self.error!r}, description={self.description!r}, "
            f"status_code={self.status_code!r})"
        )


class DatabaseUnavailableError(OAuthTokensError):
    """The database could not be reached; retry after `oauth_tokens.database.RETRY_AFTER_SECONDS`.

    Defined here (and re-exported by oauth_tokens.database) so code without the `database` extra, such as
    the MCP tool-error mapping, can recognise it.
    """

    retry_after_seconds = 2
