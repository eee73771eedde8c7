"""The calendar-api ASGI app: each user's own calendar, readable and writable only with their token.

A stand-in for a calendar SaaS (Google Calendar, Outlook): tokens must come from the calendar's own
authorization server (CALENDAR_AUTH_ISSUER) for this API (CALENDAR_API_AUDIENCE); the token's `sub`
picks the calendar. Events are kept in memory: the stand-in forgets them on restart.
"""

# No `from __future__ import annotations`: FastAPI must resolve the route closures' annotations at runtime.

import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, status
from oauth_tokens import AccessTokenValidator, Principal
from oauth_tokens.body_limit import BodyLimitMiddleware
from oauth_tokens.dpop_resource import install_dpop
from oauth_tokens.fastapi import JsonBody, install_token_validation, require_scopes
from pydantic import AwareDatetime, BaseModel, Field

from calendar_api.settings import CalendarApiSettings

logger = logging.getLogger("calendar_api")

ReadPrincipal = Annotated[Principal, Depends(require_scopes("calendar:read"))]
WritePrincipal = Annotated[Principal, Depends(require_scopes("calendar:write"))]


class NewEvent(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    start: AwareDatetime
    minutes: int = Field(ge=5, le=8 * 60)
    attendees: list[str] = Field(default_factory=list, max_length=50)


class Event(NewEvent):
    id: str
    # Which OAuth client created it on the user's behalf (the token's client_id).
    created_by_client: str


class EventList(BaseModel):
    events: list[Event]


class Calendars:
    """Every user's events, by `sub`, in memory."""

    def __init__(self) -> None:
        self._events: dict[str, list[Event]] = {}
        self._lock = threading.Lock()

    def list(self, subject: str) -> list[Event]:
        with self._lock:
            return sorted(self._events.get(subject, []), key=lambda event: event.start)

    def add(self, subject: str, new: NewEvent, client_id: str) -> Event:
        event = Event(id=f"evt_{secrets.token_hex(6)}", created_by_client=client_id, **new.model_dump())
        with self._lock:
            self._events.setdefault(subject, []).append(event)
        return event


# Events are small; a larger body is refused (413) before it is read.
MAX_BODY_BYTES = 16 * 1024


def create_app(settings: CalendarApiSettings) -> FastAPI:
    """Build the app: the validator trusts CALENDAR_AUTH_ISSUER for audience CALENDAR_API_AUDIENCE only."""
    calendars = Calendars()
    validator = AccessTokenValidator(settings.validator_config())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "calendar-api (a STAND-IN for a calendar SaaS) started: audience %s, issuer %s",
            settings.calendar_api_audience,
            settings.calendar_auth_issuer,
        )
        async with validator:
            yield

    app = FastAPI(
        title="calendar-api",
        summary="Stand-in for a calendar SaaS: each user's own calendar, behind its own authorization server.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_token_validation(app, validator, realm="calendar-api")
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    install_dpop(app, settings)  # AUTH_DPOP: DPoP-bound tokens only with their proof (docs/dpop.md)
    # Read only after the route's principal dependency has checked the token (see JsonBody).
    event_body = JsonBody(NewEvent)

    @app.get("/health", summary="Liveness check (no token needed)", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/events", summary="The caller's own events, earliest first (scope calendar:read)", tags=["events"])
    async def list_events(principal: ReadPrincipal) -> EventList:
        return EventList(events=calendars.list(principal.subject))

    @app.post(
        "/events",
        summary="Add an event to the caller's own calendar (scope calendar:write)",
        tags=["events"],
        status_code=status.HTTP_201_CREATED,
        openapi_extra=event_body.openapi,
    )
    async def add_event(principal: WritePrincipal, new_event: Annotated[NewEvent, Depends(event_body)]) -> Event:
        event = calendars.add(principal.subject, new_event, principal.client_id or principal.subject)
        logger.info("Event %s added for %s by client %s", event.id, principal.subject, event.created_by_client)
        return event

    return app
