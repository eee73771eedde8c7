"""Misbehaving HTTP servers on loopback, in the test's own event loop: one that accepts and never
answers, and one that answers 200 and then drips its body one byte at a time, forever.

They count the connections they accepted, so a test can prove callers did not pile up attempts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import SocketAttribute, SocketStream

# Declares a body far longer than will ever arrive, so a client keeps reading.
_DRIP_HEAD = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"padding": "'


@dataclass
class MisbehavingServer:
    url: str
    connections: int = 0


@asynccontextmanager
async def misbehaving_server(*, drip_every_seconds: float | None = None) -> AsyncIterator[MisbehavingServer]:
    """A server at `url` that never answers, or (with `drip_every_seconds`) drips a 200's body forever."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    server = MisbehavingServer(url=f"http://127.0.0.1:{port}")

    async def handle(stream: SocketStream) -> None:
        server.connections += 1
        try:
            async with stream:
                if drip_every_seconds is None:
                    await anyio.sleep_forever()
                await stream.receive()  # the request head: enough to answer
                await stream.send(_DRIP_HEAD)
                while True:
                    await anyio.sleep(drip_every_seconds)
                    await stream.send(b" ")
        except (anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError, ConnectionError):
            pass  # the client gave up, as it should

    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            group.cancel_scope.cancel()
