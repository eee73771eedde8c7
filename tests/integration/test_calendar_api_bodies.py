"""calendar-api refuses bodies like every other API here: the token is checked before a body is read, and
a body over 16 KiB is refused with 413 before it is read."""

from __future__ import annotations

import httpx2

from tests.integration.conftest import Topology


def test_an_unauthenticated_post_is_refused_before_its_body_is_read(topology: Topology) -> None:
    """A malformed body without a token is a 401, not a 422: the body was never parsed."""
    url = f"{topology.env['CALENDAR_API_URL']}/events"
    response = httpx2.post(url, content=b'{"title": ', headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 401


def test_a_declared_oversized_body_is_a_413(topology: Topology) -> None:
    url = f"{topology.env['CALENDAR_API_URL']}/events"
    body = b"{" + b" " * (16 * 1024) + b"}"
    response = httpx2.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
