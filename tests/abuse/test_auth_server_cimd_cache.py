"""Abuse: client_id URLs sent by a few addresses must not push a real client's metadata document out of
the cache.

On main the cache was bounded only in all (1 000), and when full it dropped the document closest to
expiry: a flood of distinct client_id URLs, all valid documents on the attacker's own host, pushed out
the documents real users' sign-ins rely on, which were then fetched again for every sign-in. Here the
same at a scale of seconds: a cache of 10 with a share of 3 per address, four addresses sending 10 URLs
each, against a real auth-server on loopback that fetches real documents from a web server on
127.0.0.1 (the development setting allows loopback). Bounded outcome: the real client's document, fetched
once for its user's sign-in, is still cached after the flood: the second sign-in fetches nothing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.abuse.auth_server_support import from_address, scaled_auth_server
from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.metadata_host import Answer, DocumentHost

SCALED = {
    "max_cached_documents = 1000": "max_cached_documents = 10",
    "max_cached_documents_per_address = 50": "max_cached_documents_per_address = 3",
}
FLOODERS = (2, 3, 4, 5)
REDIRECT = "http://127.0.0.1:5555/callback"


@pytest.fixture(scope="module")
def host() -> Iterator[DocumentHost]:
    documents = DocumentHost()
    yield documents
    documents.stop()


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthTestEnv]:
    development = {"AUTH_SERVER_CIMD_ALLOW_LOOPBACK": "true"}
    with scaled_auth_server(tmp_path_factory.mktemp("abuse-cimd-cache"), SCALED, development) as env:
        yield env


def _publish(host: DocumentHost, path: str, name: str) -> str:
    document: dict[str, Any] = {"client_id": host.url(path), "client_name": name, "redirect_uris": [REDIRECT]}
    host.answers[path] = Answer(document=document)
    return host.url(path)


def _authorize_url(auth: AuthTestEnv, client_id: str) -> str:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 43).digest()).decode().rstrip("=")
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{auth.url}/authorize?{urlencode(query)}"


def test_a_client_id_url_flood_does_not_evict_a_real_clients_document(auth: AuthTestEnv, host: DocumentHost) -> None:
    real = _publish(host, "/real/client.json", "Real client")
    with from_address(9) as user:
        first = user.get(_authorize_url(auth, real))
    assert first.status_code == 200, first.text
    assert host.requests["/real/client.json"] == 1

    statuses: list[int] = []
    for address in FLOODERS:
        with from_address(address) as attacker:
            for number in range(10):
                junk = _publish(host, f"/junk/{address}/{number}.json", "Junk")
                statuses.append(attacker.get(_authorize_url(auth, junk)).status_code)
    assert statuses == [200] * 40
    assert sum(count for path, count in host.requests.items() if path.startswith("/junk/")) == 40

    with from_address(9) as user:
        again = user.get(_authorize_url(auth, real))
    assert again.status_code == 200, again.text
    assert "Real client" in again.text
    assert host.requests["/real/client.json"] == 1  # still cached: the flood evicted its own documents
