"""crm-api and request bodies: an oversized body is refused before it is read, a token is checked before
any body is read, and JSON that is malformed, too deeply nested or not UTF-8 is a 422, never a 500.

The 200 MiB bodies are streamed over a raw socket from one reused 1 MiB buffer (the test never holds
them), while the server process's resident memory is read from /proc before and after.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import httpx2
import pytest
from devkit.processes import ServiceProcess

Bearer = Callable[..., dict[str, str]]

MIB = 1024 * 1024
BODY_MIB = 200
# "A few MiB": the old crm-api grew by ~166 MiB reading such a body before its 401.
MAX_RSS_GROWTH = 8 * MIB
NOTES = "/customers/cus_001/notes"


def post_streamed(service: ServiceProcess, *, chunked: bool, headers: dict[str, str] | None = None) -> bytes:
    """POST a 200 MiB body to the notes route, sent while the answer is read; the answer's head.

    The body goes out from a second thread, 1 MiB at a time, until it is all sent or the server stops
    reading (it closes the connection); meanwhile this thread reads the status line and headers.
    """
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_MIB * MIB}"
    head = f"POST {NOTES} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}\r\n{extra}\r\n"
    block = b" " * MIB  # JSON whitespace, reused for every MiB
    chunk = f"{MIB:x}\r\n".encode() + block + b"\r\n" if chunked else block
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as connection:
        connection.sendall(head.encode())

        def send_body() -> None:
            try:
                for _ in range(BODY_MIB):
                    connection.sendall(chunk)
                if chunked:
                    connection.sendall(b"0\r\n\r\n")
            except OSError:  # the server answered and closed: the rest is not wanted
                return

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer:
            received = connection.recv(65536)
            if not received:
                break
            answer += received
        with contextlib.suppress(OSError):  # already closed by the server, or not: either way stop sending
            connection.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=30)
    return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_200_mib_post_without_a_token_is_refused_without_reading_it(crm_api: ServiceProcess, chunked: bool) -> None:
    assert httpx2.get(f"{crm_api.url}/health").status_code == 200
    before = crm_api.resident_bytes()
    answer = post_streamed(crm_api, chunked=chunked)
    growth = crm_api.resident_bytes() - before
    # A declared length over the limit is a 413 at once; a chunked body is not read before the token check.
    expected = b"HTTP/1.1 401 " if chunked else b"HTTP/1.1 413 "
    assert answer.startswith(expected), answer[:200]
    assert growth < MAX_RSS_GROWTH, f"crm-api grew by {growth / MIB:.1f} MiB"


def test_a_chunked_200_mib_post_with_a_token_is_counted_and_refused(crm_api: ServiceProcess, bearer: Bearer) -> None:
    before = crm_api.resident_bytes()
    answer = post_streamed(crm_api, chunked=True, headers=bearer(scope="crm:write"))
    growth = crm_api.resident_bytes() - before
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert growth < MAX_RSS_GROWTH, f"crm-api grew by {growth / MIB:.1f} MiB"


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": ',
        b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"text": "\xff\xfe"}',
        b"null",
    ],
    ids=["malformed", "deeply-nested", "not-utf-8", "not-an-object"],
)
def test_bad_json_is_a_422(crm_api: ServiceProcess, bearer: Bearer, body: bytes) -> None:
    response = httpx2.post(
        f"{crm_api.url}{NOTES}",
        content=body,
        headers={**bearer(scope="crm:write"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_a_bad_body_without_a_token_is_a_401_not_a_422(crm_api: ServiceProcess) -> None:
    response = httpx2.post(f"{crm_api.url}{NOTES}", content=b'{"text": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 401


def test_a_note_still_posts(crm_api: ServiceProcess, bearer: Bearer) -> None:
    response = httpx2.post(f"{crm_api.url}{NOTES}", json={"text": "Body after token"}, headers=bearer())
    assert response.status_code == 201, response.text
    assert response.json()["notes"][-1]["text"] == "Body after token"
