"""One status policy for every downstream: what a 429 or 5xx becomes, and Retry-After in both its forms."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx2
import pytest
from crm_mcp.downstream import error_for_status, retry_after_seconds


def answer(status: int, retry_after: str | None = None) -> httpx2.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx2.Response(status, headers=headers, request=httpx2.Request("GET", "http://127.0.0.1:9/"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7), ("0", 0), (None, None), ("soon", None), ("-3", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0)],
)
def test_retry_after_in_seconds(value: str | None, expected: int | None) -> None:
    assert retry_after_seconds(answer(429, value)) == expected


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    seconds = retry_after_seconds(answer(503, formatdate(time.time() + 120, usegmt=True)))
    assert seconds is not None
    assert 118 <= seconds <= 121


@pytest.mark.parametrize(
    ("status", "retry_after", "message", "seconds"),
    [
        (429, "7", "svc rate limit reached (429 Too Many Requests); retry after 7 s.", 7),
        (429, None, "svc rate limit reached (429 Too Many Requests); try again later.", None),
        (500, None, "svc is failing (500); try again later.", None),
        (503, "3", "svc is failing (503); retry after 3 s.", 3),
        (400, "3", "svc rejected the request (400).", None),  # Retry-After means nothing on a 400
    ],
)
def test_error_statuses_say_what_happened_and_pass_retry_after_on(
    status: int, retry_after: str | None, message: str, seconds: int | None
) -> None:
    error = error_for_status("svc", answer(status, retry_after))
    assert error is not None
    assert str(error) == message
    assert error.retry_after_seconds == seconds


def test_a_success_is_no_error() -> None:
    assert error_for_status("svc", answer(200)) is None
