"""The crm-api ASGI app: customer search, detail and notes, each scoped to the token's user (`sub`)."""

# No `from __future__ import annotations`: FastAPI must resolve the route closures' annotations at runtime.

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request, status
from fastapi.responses import JSONResponse
from oauth_tokens import AccessTokenValidator, Principal
from oauth_tokens.body_limit import BodyLimitMiddleware
from oauth_tokens.dpop_resource import install_dpop
from oauth_tokens.fastapi import JsonBody, install_token_validation, require_scopes
from oauth_tokens.service_database import READY_PATH, install_database_outage, readiness_endpoint

from crm_api.models import Customer, CustomerList, ErrorBody, NewNote
from crm_api.settings import CrmApiSettings
from crm_api.store import CustomerStore

logger = logging.getLogger("crm_api")


class NoUserError(Exception):
    """The token names a client acting as itself (client credentials), not a user: answered 403."""


def for_a_user(*scopes: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller's Principal if it holds `scopes` (else 403) and names a user.

    crm-api acts only for sales reps. A client-credentials token names no user: RFC 9068 §2.2 puts the
    client's own id in `sub` then, so `sub` == `client_id` means "no user" (the auth-server refuses a
    config where a client id could equal a username). Such a token is refused (403), not treated as a
    rep who happens to own nothing. A delegated token (token exchange) names the user in `sub` and the
    acting service in `act`, so it passes.
    """

    async def user_principal(principal: Annotated[Principal, Depends(require_scopes(*scopes))]) -> Principal:
        if principal.client_id is not None and principal.subject == principal.client_id:
            raise NoUserError
        return principal

    return user_principal


# Each route states its scope in its signature; the dependency returns the validated user.
ReadPrincipal = Annotated[Principal, Depends(for_a_user("crm:read"))]
WritePrincipal = Annotated[Principal, Depends(for_a_user("crm:write"))]
CustomerId = Annotated[str, Path(pattern=r"^cus_\d{3,9}$", examples=["cus_001"])]
# Read only after the route's principal dependency has checked the token (see JsonBody).
NOTE_BODY = JsonBody(NewNote)
NoteBody = Annotated[NewNote, Depends(NOTE_BODY)]
# The largest body crm-api accepts: a note is at most 2000 characters (8 KB of UTF-8) plus JSON.
MAX_BODY_BYTES = 16 * 1024

_TOKEN_ERRORS: dict[int | str, dict[str, object]] = {
    401: {
        "model": ErrorBody,
        "description": "No token, or an invalid/expired token or one for another audience",
    },
    403: {
        "model": ErrorBody,
        "description": "The token lacks this route's scope (error=insufficient_scope), "
        "or names no user (error=access_denied: a client-credentials token)",
    },
}
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "No such customer among the caller's own customers"}
}


class CustomerNotFoundError(Exception):
    """The customer does not exist or belongs to another rep: both answer 404, so existence never leaks."""


def create_app(settings: CrmApiSettings) -> FastAPI:
    """Build the app: the store, and the validator that trusts AUTH_ISSUER for audience CRM_API_AUDIENCE."""
    database = settings.database()
    store = CustomerStore(database)
    # Built here (not in the lifespan) because its exception handlers must be registered before the
    # app starts; the lifespan closes its HTTP client.
    validator = AccessTokenValidator(settings.validator_config(audiences=[settings.crm_api_audience]))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await database.start(migrate_on_start=settings.database_migrate_on_start)
        logger.info(
            "crm-api started: audience %s, issuer %s, database %s",
            settings.crm_api_audience,
            settings.auth_issuer,
            database.description,
        )
        try:
            async with validator:
                yield
        finally:
            await database.dispose()

    app = FastAPI(
        title="crm-api",
        summary="Internal CRM backend: validates the caller's own access token (pattern 3, token cascade).",
        description="Every route needs a bearer token issued by AUTH_ISSUER for the audience "
        "CRM_API_AUDIENCE. Data is scoped to the token's `sub`: a sales rep sees only their own customers.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_token_validation(app, validator, realm="crm-api")
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    install_dpop(app, settings)  # AUTH_DPOP: DPoP-bound tokens only with their proof (docs/dpop.md)
    install_database_outage(app)  # 503 + Retry-After while the database cannot be reached, never 500

    @app.exception_handler(CustomerNotFoundError)
    async def customer_not_found(_: Request, __: Exception) -> JSONResponse:
        body = ErrorBody(error="not_found", error_description="Customer not found")
        return JSONResponse(body.model_dump(), status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(NoUserError)
    async def no_user(_: Request, __: Exception) -> JSONResponse:
        body = ErrorBody(error="access_denied", error_description="crm-api acts only for a user; this token names none")
        return JSONResponse(body.model_dump(), status_code=status.HTTP_403_FORBIDDEN)

    @app.get("/health", summary="Liveness check (no token needed)", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_api_route(
        READY_PATH,
        readiness_endpoint(database),
        methods=["GET"],
        summary="Readiness: 503 while the database cannot be reached (no token needed)",
        tags=["ops"],
        include_in_schema=True,
    )

    @app.get(
        "/customers",
        summary="Search the caller's customers (scope crm:read)",
        tags=["customers"],
        responses=_TOKEN_ERRORS,
    )
    async def search_customers(
        principal: ReadPrincipal,
        q: Annotated[str | None, Query(max_length=100, description="Matches name, company or city")] = None,
    ) -> CustomerList:
        customers = await store.search(principal.subject, q)
        return CustomerList(customers=customers, count=len(customers))

    @app.get(
        "/customers/{customer_id}",
        summary="One of the caller's customers, with notes (scope crm:read)",
        tags=["customers"],
        responses={**_TOKEN_ERRORS, **_NOT_FOUND},
    )
    async def get_customer(principal: ReadPrincipal, customer_id: CustomerId) -> Customer:
        customer = await store.get(principal.subject, customer_id)
        if customer is None:
            raise CustomerNotFoundError
        return customer

    @app.post(
        "/customers/{customer_id}/notes",
        summary="Add a note to one of the caller's customers (scope crm:write)",
        description="The note's author is the token's `sub`, its client the token's `client_id` and its actor "
        "the token's `act.sub` (a token exchange); the answer is the customer with all its notes, the new one last.",
        tags=["customers"],
        status_code=status.HTTP_201_CREATED,
        responses={**_TOKEN_ERRORS, **_NOT_FOUND},
        openapi_extra=NOTE_BODY.openapi,
    )
    async def add_note(principal: WritePrincipal, customer_id: CustomerId, new_note: NoteBody) -> Customer:
        customer = await store.add_note(
            principal.subject, customer_id, new_note.text, principal.client_id, principal.actor
        )
        if customer is None:
            raise CustomerNotFoundError
        logger.info(
            "Note added to %s by %s via client %s, actor %s",
            customer_id,
            principal.subject,
            principal.client_id,
            principal.actor,
        )
        return customer

    return app
