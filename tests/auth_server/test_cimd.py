"""Client ID Metadata Documents: the official SDK client signing in with `client_metadata_url`, the consent
page, the token endpoint, caching, and every refusal (wrong document, unlisted redirect, too large, too
slow, redirecting, private or loopback address, plain http), against a real auth-server process and a real
web server on 127.0.0.1 hosting the documents. No test sends traffic beyond 127.0.0.0/8."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
from devkit.headless_login import MemoryTokenStorage
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

from tests.auth_server.browser import Browser, query_of
from tests.auth_server.conftest import AuthTestEnv, start_auth_server
from tests.auth_server.metadata_host import Answer, DocumentHost, write_test_ca
from tests.auth_server.resource_server import running_resource_server, whoami
from tests.auth_server.test_mcp_sdk import HeadlessUser
from tests.auth_server.tokens import claims_of

NAME = "CIMD Test Client"


def document(host: DocumentHost, path: str, **changes: Any) -> dict[str, Any]:
    """A valid document for `path` on `host` (portless loopback redirect URIs, as native clients publish)."""
    return {
        "client_id": host.url(path),
        "client_name": NAME,
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **changes,
    }


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return write_test_ca(tmp_path_factory.mktemp("cimd-ca"))


@pytest.fixture(scope="module")
def https_host(certificates: tuple[Path, Path, Path]) -> Iterator[DocumentHost]:
    host = DocumentHost(certificate=(certificates[1], certificates[2]), host_name="localhost")
    yield host
    host.stop()


@pytest.fixture(scope="module")
def http_host() -> Iterator[DocumentHost]:
    host = DocumentHost()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def dev_auth(tmp_path_factory: pytest.TempPathFactory, certificates: tuple[Path, Path, Path]) -> Iterator[AuthTestEnv]:
    """An auth-server with the development setting on (loopback documents), trusting the test CA, and a
    1 s fetch deadline."""
    env, process = start_auth_server(
        tmp_path_factory.mktemp("auth-server-cimd"),
        config_changes={"fetch_timeout_seconds = 5.0": "fetch_timeout_seconds = 1.0"},
        extra_env={"AUTH_SERVER_CIMD_ALLOW_LOOPBACK": "true", "SSL_CERT_FILE": str(certificates[0])},
    )
    yield env
    process.stop()


def _authorization_url(auth: AuthTestEnv, client_id: str, redirect_uri: str, verifier: str = "v" * 43) -> str:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": auth.crm_mcp_resource,
        "state": secrets.token_urlsafe(8),
    }
    return f"{auth.url}/authorize?{urlencode(query)}"


def _open(auth: AuthTestEnv, client_id: str, redirect_uri: str = "http://127.0.0.1:5555/callback") -> httpx2.Response:
    browser = Browser()
    try:
        return browser.open(_authorization_url(auth, client_id, redirect_uri))
    finally:
        browser.close()


def test_the_metadata_advertises_cimd_and_keeps_registration(auth: AuthTestEnv, http: httpx2.Client) -> None:
    metadata = http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()
    assert metadata["client_id_metadata_document_supported"] is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]  # CIMD clients are public
    assert metadata["registration_endpoint"] == f"{auth.issuer}/register"  # deprecated, still there


@pytest.mark.anyio
async def test_the_sdk_client_signs_in_with_its_metadata_document(
    dev_auth: AuthTestEnv, https_host: DocumentHost
) -> None:
    url = https_host.url("/sdk/client.json")
    https_host.answers["/sdk/client.json"] = Answer(
        document=document(https_host, "/sdk/client.json"),
        headers={"Content-Type": "application/json", "Cache-Control": "public, max-age=600"},
    )
    user = HeadlessUser("alice", dev_auth.alice_password)
    storage = MemoryTokenStorage()
    provider = OAuthClientProvider(
        server_url=dev_auth.crm_mcp_resource,
        client_metadata=OAuthClientMetadata(
            client_name=NAME,
            redirect_uris=[AnyUrl("http://localhost:38123/callback")],  # any port: the document lists none
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
        client_metadata_url=url,
    )
    async with running_resource_server(dev_auth, dev_auth.crm_mcp_resource, dev_auth.crm_mcp_port):
        identity = await whoami(dev_auth.crm_mcp_resource, provider)
        assert identity.split(" ")[:2] == ["alice", url]  # the token's client_id is the document URL
        assert storage.client_info is not None
        assert storage.client_info.client_id == url
        provider.context.token_expiry_time = 1.0  # expired: the SDK refreshes as the same client
        assert await whoami(dev_auth.crm_mcp_resource, provider) == identity
    assert user.authorizations == 1
    assert storage.tokens is not None
    assert claims_of(storage.tokens.access_token)["client_id"] == url
    # authorize, sign-in, consent, code and refresh all used one fetch: the document said max-age=600.
    assert https_host.requests["/sdk/client.json"] == 1


def test_consent_names_the_client_and_its_host_and_the_code_redeems(
    dev_auth: AuthTestEnv, https_host: DocumentHost, http: httpx2.Client
) -> None:
    https_host.answers["/consent.json"] = Answer(document=document(https_host, "/consent.json"))
    client_id, redirect_uri, verifier = https_host.url("/consent.json"), "http://127.0.0.1:5555/callback", "w" * 43
    browser = Browser()
    try:
        consent = browser.sign_in(
            _authorization_url(dev_auth, client_id, redirect_uri, verifier), "bob", dev_auth.bob_password
        )
        assert f"<strong>{NAME}</strong> from <strong>localhost</strong>" in consent.text
        assert "runs on your own computer" in consent.text  # a loopback redirect: anyone can claim it
        location = browser.submit(consent, {}, button=("decision", "approve")).headers["location"]
    finally:
        browser.close()
    assert location.startswith(f"{redirect_uri}?")
    token = http.post(
        dev_auth.token_url,
        data={
            "grant_type": "authorization_code",
            "code": query_of(location)["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert token.status_code == 200, token.text
    assert claims_of(token.json()["access_token"])["client_id"] == client_id


def test_plain_http_on_loopback_works_only_with_the_development_setting(
    auth: AuthTestEnv, dev_auth: AuthTestEnv, http_host: DocumentHost
) -> None:
    http_host.answers["/client.json"] = Answer(document=document(http_host, "/client.json"))
    client_id = http_host.url("/client.json")
    refused = _open(auth, client_id)
    assert refused.status_code == 400
    assert "must use https" in refused.text
    assert http_host.requests["/client.json"] == 0  # refused before any connection
    assert _open(dev_auth, client_id).status_code == 200  # the sign-in page


def test_loopback_is_refused_without_the_development_setting_before_connecting(
    auth: AuthTestEnv, https_host: DocumentHost
) -> None:
    https_host.answers["/anyone.json"] = Answer(document=document(https_host, "/anyone.json"))
    page = _open(auth, https_host.url("/anyone.json"))
    assert page.status_code == 400
    assert "loopback address" in page.text
    assert https_host.requests["/anyone.json"] == 0


REFUSALS = {
    "mismatched client_id": (
        Answer(document={"client_id": "https://elsewhere.test/client.json"}),
        "not exactly its URL",
    ),
    "no client_name": (Answer(document={"client_name": ""}), "has no client_name"),
    "client secret": (Answer(document={"token_endpoint_auth_method": "client_secret_basic"}), "client secret"),
    "private_key_jwt without keys": (
        Answer(document={"token_endpoint_auth_method": "private_key_jwt"}),
        "with private_key_jwt needs a jwks_uri",
    ),
    "another method": (
        Answer(document={"token_endpoint_auth_method": "tls_client_auth"}),
        "must be none or private_key_jwt",
    ),
    "oversized": (Answer(document={"padding": "x" * 6000}, declare_length=False), "larger than 5120 bytes"),
    "slow": (Answer(hang=True), "did not answer within 1 s"),
    "redirecting": (Answer(status=302, headers={"Location": "/client.json"}), "answered with a redirect (HTTP 302)"),
    "not found": (Answer(status=404, body=b"{}"), "HTTP 404, not 200"),
    "not JSON": (Answer(headers={"Content-Type": "text/html"}, body=b"<html>"), "not served as application/json"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_document_is_refused_on_a_page_and_never_cached(
    dev_auth: AuthTestEnv, https_host: DocumentHost, case: str
) -> None:
    answer, reason = REFUSALS[case]
    path = f"/refused/{case.replace(' ', '-')}.json"
    if answer.document is not None:  # a change to an otherwise valid document
        changes = answer.document
        answer = Answer(document=document(https_host, path, **changes), declare_length=answer.declare_length)
    https_host.answers[path] = answer
    for attempt in (1, 2):
        page = _open(dev_auth, https_host.url(path))
        assert page.status_code == 400, page.text
        assert "Application not accepted" in page.text
        assert reason in page.text
        assert "location" not in page.headers  # never sent back to a redirect URI it did not vouch for
        assert https_host.requests[path] == attempt  # errors are not cached: fetched again


def test_a_certificate_from_an_untrusted_ca_is_refused(dev_auth: AuthTestEnv, tmp_path: Path) -> None:
    _, certificate, key = write_test_ca(tmp_path)  # another CA, which the auth-server does not trust
    impostor = DocumentHost(certificate=(certificate, key), host_name="localhost")
    try:
        impostor.answers["/client.json"] = Answer(document=document(impostor, "/client.json"))
        page = _open(dev_auth, impostor.url("/client.json"))
    finally:
        impostor.stop()
    assert page.status_code == 400
    assert "connection or TLS failure" in page.text


def test_a_redirect_uri_the_document_does_not_list_is_refused(dev_auth: AuthTestEnv, https_host: DocumentHost) -> None:
    https_host.answers["/listed.json"] = Answer(document=document(https_host, "/listed.json"))
    for unlisted in (
        "http://127.0.0.1:5555/elsewhere",
        "https://attacker.test/callback",
        "http://127.0.0.1:5555/callback/",
    ):
        page = _open(dev_auth, https_host.url("/listed.json"), redirect_uri=unlisted)
        assert page.status_code == 400
        assert "The redirect_uri is not registered for this application." in page.text


def test_the_token_endpoint_refuses_a_document_that_cannot_be_fetched(
    dev_auth: AuthTestEnv, https_host: DocumentHost, http: httpx2.Client
) -> None:
    response = http.post(
        dev_auth.token_url,
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "code_verifier": "v" * 43,
            "client_id": https_host.url("/gone.json"),
        },
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
