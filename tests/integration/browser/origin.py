"""A tiny loopback web server: the origin of a browser-based MCP client's page, and its OAuth redirect target.

Every path answers the same small HTML page, so the browser has a document of that origin to run
`fetch` from, and a callback URL to land on after consent (the test reads `code`, `state`, `iss` from it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = (
    b'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Browser client</title></head>\n'
    b"<body><p>A browser-based MCP client.</p></body></html>\n"
)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the URLs carry authorization codes."""


@dataclass(frozen=True)
class OriginServer:
    port: int

    def origin(self, host: str = "127.0.0.1") -> str:
        """The page origin when the browser reaches this server as `host` (all names map to loopback)."""
        return f"http://{host}:{self.port}"

    @property
    def callback(self) -> str:
        return f"{self.origin()}/callback"


@contextmanager
def serving_origin() -> Iterator[OriginServer]:
    """Serve on a free loopback port in a background thread; stop it afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="origin-server", daemon=True)
    thread.start()
    try:
        yield OriginServer(port=int(server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
