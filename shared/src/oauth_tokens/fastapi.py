"""FastAPI adapter: a bearer-token dependency and RFC 6750 error responses (needs the `fastapi` extra)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from oauth_tokens.challenge import (
    INVALID_TOKEN_DESCRIPTION,
    MISSING_TOKEN_DESCRIPTION,
    bearer_challenge,
    bearer_error_response,
)
from oauth_tokens.errors import (
    InsufficientScopeError,
    InvalidTokenError,
    KeySourceUnavailableError,
    MissingTokenError,
)
from oauth_tokens.key_source_outage import key_source_unavailable_answer
from oauth_tokens.principal import Principal
from oauth_tokens.validator import AccessTokenValidator

__all__ = [
    "INVALID_TOKEN_DESCRIPTION",
    "CurrentPrincipal",
    "JsonBody",
    "authenticated_principal",
    "install_token_validation",
    "require_scopes",
]


ModelT = TypeVar("ModelT", bound=BaseModel)

_VALIDATOR_STATE = "oauth_tokens_validator"
_REALM_STATE = "oauth_tokens_realm"

# auto_error=False: a missing token must get our RFC 6750 answer, not FastAPI's default one.
_bearer_scheme = HTTPBearer(auto_error=False, description="OAuth 2.1 JWT access token")


def _realm_of(request: Request) -> str | None:
    realm: str | None = getattr(request.app.state, _REALM_STATE, None)
    return realm


async def _invalid_token_handler(request: Request, exc: Exception) -> Response:
    realm = _realm_of(request)
    if isinstance(exc, MissingTokenError):
        return bearer_error_response(401, bearer_challenge(realm), "unauthorized", MISSING_TOKEN_DESCRIPTION)
    challenge = bearer_challenge(realm, error="invalid_token", error_description=INVALID_TOKEN_DESCRIPTION)
    return bearer_error_response(401, challenge, "invalid_token", INVALID_TOKEN_DESCRIPTION)


async def _key_source_unavailable_handler(request: Request, exc: Exception) -> Response:
    # The token may be fine: the key source is down. 503 tells the client to retry, not to re-authenticate.
    retry_after = exc.retry_after_seconds if isinstance(exc, KeySourceUnavailableError) else None
    body, headers = key_source_unavailable_answer(retry_after)
    return JSONResponse(body, status_code=503, headers=headers)


async def _insufficient_scope_handler(request: Request, exc: Exception) -> Response:
    required = " ".join(exc.required) if isinstance(exc, InsufficientScopeError) else ""
    description = f"The access token lacks the required scope(s): {required}"
    challenge = bearer_challenge(
        _realm_of(request), error="insufficient_scope", error_description=description, scope=required
    )
    return bearer_error_response(403, challenge, "insufficient_scope", description)


def install_token_validation(app: FastAPI, validator: AccessTokenValidator, *, realm: str | None = None) -> None:
    """Make `validator` the one CurrentPrincipal uses, and answer token errors per RFC 6750.

    An unreachable key source (KeySourceUnavailableError) is a 503 with Retry-After, not a 401.
    """
    setattr(app.state, _VALIDATOR_STATE, validator)
    setattr(app.state, _REALM_STATE, realm)
    app.add_exception_handler(InvalidTokenError, _invalid_token_handler)
    # Starlette picks the handler of the most specific class, so this subclass gets its own answer.
    app.add_exception_handler(KeySourceUnavailableError, _key_source_unavailable_handler)
    app.add_exception_handler(InsufficientScopeError, _insufficient_scope_handler)


async def authenticated_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
) -> Principal:
    """The caller's Principal from `Authorization: Bearer <token>`; InvalidTokenError otherwise."""
    validator = getattr(request.app.state, _VALIDATOR_STATE, None)
    if not isinstance(validator, AccessTokenValidator):
        raise RuntimeError("install_token_validation(app, validator) was not called for this app")
    if credentials is None:
        raise MissingTokenError("No bearer token in the Authorization header")
    return await validator.validate(credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(authenticated_principal)]


def require_scopes(*scopes: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency returning the caller's Principal if it holds every scope in `scopes` (else 403)."""
    required = tuple(scopes)

    async def principal_with_scopes(principal: CurrentPrincipal) -> Principal:
        missing = principal.missing_scopes(required)
        if missing:
            raise InsufficientScopeError(required=required, missing=missing)
        return principal

    return principal_with_scopes


class JsonBody(Generic[ModelT]):
    """A dependency that reads and parses the JSON body only when FastAPI reaches it.

    FastAPI reads a body parameter before it solves any dependency, so a route with one would read a
    whole body before checking the token. Declared after the principal instead, `Depends(JsonBody(Model))`
    runs after the token check. Malformed, too deeply nested or non-UTF-8 JSON is a 422 like any other
    validation error; pass `openapi` to the route's `openapi_extra` to document the body.
    """

    def __init__(self, model: type[ModelT]) -> None:
        self.model = model

    async def __call__(self, request: Request) -> ModelT:
        body = await request.body()
        try:
            return self.model.model_validate_json(body)
        except ValidationError as error:
            problems = error.errors(include_url=False, include_context=False, include_input=False)
            located = [{**problem, "loc": ("body", *problem["loc"])} for problem in problems]
            raise RequestValidationError(located) from None

    @property
    def openapi(self) -> dict[str, Any]:
        """The route's `requestBody` in OpenAPI, as a body parameter would have documented it."""
        schema = self.model.model_json_schema()
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
