"""A real web server on 127.0.0.1 that hosts client ID metadata documents for the CIMD tests, over https
(a throwaway CA the auth-server under test trusts through SSL_CERT_FILE) or plain http.

Each path answers as its `Answer` says: a document, a status, a redirect, a body too large, or no answer
until the test ends (to prove the auth-server gives up on its own deadline). It counts the requests per
path, so a test can tell whether the auth-server fetched, refetched or never connected.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from devkit.processes import free_port


@dataclass(frozen=True)
class Answer:
    status: int = 200
    document: dict[str, Any] | None = None
    body: bytes = b""  # used when `document` is None
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    declare_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    hang: bool = False  # never answer (until the host stops)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) PEM files; the server is `localhost`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("CIMD test CA"))
        .issuer_name(_name("CIMD test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(
            # The name only, no IP: the fetch connects to 127.0.0.1 and must still check the name.
            x509.SubjectAlternativeName([x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class DocumentHost:
    """Serves `answers` (path -> Answer) on 127.0.0.1 in a background thread, over TLS if given a certificate."""

    def __init__(self, *, certificate: tuple[Path, Path] | None = None, host_name: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.scheme = "https" if certificate else "http"
        self.host_name = host_name
        self.answers: dict[str, Answer] = {}
        self.requests: Counter[str] = Counter()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*certificate)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host_name}:{self.port}{path}"

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection; a body may end at close

            def do_GET(self) -> None:
                host.requests[self.path] += 1
                answer = host.answers.get(self.path, Answer(status=404, body=b"{}"))
                if answer.hang:
                    host._release.wait(timeout=60)
                    return
                body = json.dumps(answer.document).encode() if answer.document is not None else answer.body
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.declare_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler
