"""CIMD in process: the fetch's guards (refused URLs and addresses never reach the network: a tripwire on
the HTTP client and the resolver fails the test if they do), caching headers, loopback redirect ports, and
the rules a document must follow."""

from __future__ import annotations

import json
import ssl
from typing import Any

import anyio
import httpx2
import pytest
from auth_server.cimd import InvalidDocument, client_from_document
from auth_server.clients import Client
from auth_server.config import load_config
from auth_server.document_fetch import FetchPolicy, FetchRefused, cache_lifetime, checked_url, fetch_document
from auth_server.uris import loopback_redirect_matches

POLICY = FetchPolicy(timeout_seconds=1.0, max_bytes=5120, allow_loopback=False)


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records (and stops) any lookup or request: a refusal must come before either."""
    attempts: list[str] = []

    async def no_request(self: httpx2.AsyncClient, request: httpx2.Request, **_: Any) -> httpx2.Response:
        attempts.append(f"request {request.url}")
        raise AssertionError("a request was sent")

    async def no_lookup(host: str, *_: Any, **__: Any) -> list[Any]:
        attempts.append(f"lookup {host}")
        raise AssertionError("a name was resolved")

    monkeypatch.setattr(httpx2.AsyncClient, "send", no_request)
    monkeypatch.setattr(anyio, "getaddrinfo", no_lookup)
    return attempts


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/client.json",
        "https://192.168.1.10/client.json",
        "https://172.16.0.1/client.json",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata service (link-local)
        "https://100.64.0.1/client.json",  # carrier-grade NAT
        "https://0.0.0.0/client.json",
        "https://224.0.0.1/client.json",  # multicast
        "https://240.0.0.1/client.json",  # reserved
        "https://[fd00::1]/client.json",  # unique local
        "https://[fe80::1]/client.json",  # link-local
        "https://[::ffff:10.0.0.1]/client.json",  # IPv4-mapped private
        "https://127.0.0.1/client.json",  # loopback, without the development setting
        "https://[::1]/client.json",
    ],
)
@pytest.mark.anyio
async def test_special_use_addresses_are_refused_without_any_connection(url: str, tripwire: list[str]) -> None:
    with pytest.raises(FetchRefused, match="address, which this server does not fetch from"):
        await fetch_document(url, POLICY, ssl.create_default_context())
    assert tripwire == []


@pytest.mark.anyio
async def test_the_development_setting_allows_loopback_only(tripwire: list[str]) -> None:
    development = FetchPolicy(timeout_seconds=1.0, max_bytes=5120, allow_loopback=True)
    with pytest.raises(FetchRefused, match="private or special-use"):
        await fetch_document("https://10.0.0.1/client.json", development, ssl.create_default_context())
    with pytest.raises(FetchRefused, match="must use https"):  # plain http only for a loopback host
        await fetch_document("http://10.0.0.1/client.json", development, ssl.create_default_context())
    assert tripwire == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://app.example.test/client.json", "must use https"),
        ("ftp://app.example.test/client.json", "must use https"),
        ("https://app.example.test", "must have a path"),
        ("https://app.example.test/", "must have a path"),
        ("https://user@app.example.test/client.json", "user name or password"),
        ("https://app.example.test/client.json#x", "fragment"),
        ("https://app.example.test/a/../client.json", "path segments"),
        ("https://app.example.test:99999/client.json", "not a valid URL"),
        ("https://app.example.test/" + "a" * 2048, "longer than"),
        ("https://app.example.test/client.json\n", "control characters"),
        ("https://app.example.test/my client.json", "spaces"),
    ],
)
def test_client_id_urls_must_follow_the_draft(url: str, reason: str) -> None:
    with pytest.raises(FetchRefused, match=reason):
        checked_url(url, allow_loopback=True)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Cache-Control": "public, max-age=600"}, 600.0),
        ({"Cache-Control": "no-store"}, 0.0),
        ({"Cache-Control": "no-cache, max-age=600"}, 0.0),
        ({"Cache-Control": "max-age=soon"}, 0.0),
        ({"Expires": "Thu, 01 Jan 2026 00:10:00 GMT", "Date": "Thu, 01 Jan 2026 00:00:00 GMT"}, 600.0),
        ({"Expires": "0"}, 0.0),
        ({}, None),
    ],
)
def test_cache_lifetime_follows_rfc_9111(headers: dict[str, str], seconds: float | None) -> None:
    assert cache_lifetime(httpx2.Headers(headers)) == seconds


@pytest.mark.parametrize(
    ("registered", "requested", "matches"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:49152/callback", True),
        ("http://localhost/callback", "http://localhost:8080/callback", True),
        ("http://[::1]/callback", "http://[::1]:8080/callback", True),
        ("http://127.0.0.1/callback", "http://127.0.0.1/callback/x", False),
        ("http://127.0.0.1/callback", "http://127.0.0.2:8080/callback", False),
        ("http://127.0.0.1/callback", "https://127.0.0.1:8080/callback", False),
        ("http://127.0.0.1:3000/callback", "http://127.0.0.1:3001/callback", False),  # a listed port is exact
        ("https://app.example.test/callback", "https://app.example.test:8443/callback", False),
        ("http://127.0.0.1/callback", "http://127.0.0.1:8080/callback?extra=1", False),
    ],
)
def test_a_portless_loopback_redirect_uri_accepts_any_port_and_nothing_else(
    registered: str, requested: str, matches: bool
) -> None:
    assert loopback_redirect_matches(registered, requested) is matches


URL = "https://app.example.test/client.json"
CONFIG = load_config(
    None,
    {
        "CRM_MCP_RESOURCE": "http://127.0.0.1:1/mcp",
        "TICKETS_MCP_RESOURCE": "http://127.0.0.1:2/mcp",
        "CRM_API_AUDIENCE": "http://127.0.0.1:3",
        "CRM_MCP_PUBLIC_URL": "http://127.0.0.1:1",
        "CRM_MCP_JWKS_URI": "http://127.0.0.1:1/.well-known/jwks.json",
        "CALENDAR_AUTH_ISSUER": "http://127.0.0.1:4",
        "CALENDAR_API_AUDIENCE": "http://127.0.0.1:5",
        "CALENDAR_CLIENT_ID": "crm-mcp",
    },
)


def _client(**changes: Any) -> Client:
    document = {"client_id": URL, "client_name": "App", "redirect_uris": ["https://app.example.test/cb"], **changes}
    return client_from_document(URL, json.dumps(document).encode(), CONFIG)


def test_a_document_client_is_public_with_the_registration_policy() -> None:
    client = _client()
    assert (client.client_id, client.name, client.from_metadata_document) == (URL, "App", True)
    assert not client.is_confidential
    assert client.grant_types == {"authorization_code"}  # RFC 7591's default: no refresh tokens unless listed
    assert client.resources == CONFIG.registration.resources
    assert client.scopes == CONFIG.registration_scopes()
    assert _client(client_name="x" * 500).name == "x" * 100
    # `scope` narrows; scopes this server does not know are another server's business.
    assert _client(scope="crm:read elsewhere:admin").scopes == ("crm:read",)


def test_a_private_key_jwt_document_is_a_confidential_client_whose_keys_are_fetched_through_the_guard() -> None:
    client = _client(token_endpoint_auth_method="private_key_jwt", jwks_uri="https://app.example.test/jwks.json")
    assert client.is_confidential
    assert client.token_endpoint_auth_method == "private_key_jwt"
    assert (client.jwks_uri, client.jwks_uri_trusted) == ("https://app.example.test/jwks.json", False)
    assert _client(jwks_uri="https://app.example.test/jwks.json").jwks_uri is None  # a public client: no keys


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"client_secret": "s"}, "must not use a client secret"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "must not use a client secret"),
        ({"grant_types": ["authorization_code", "client_credentials"]}, "grant_types may only be"),
        ({"response_types": ["token"]}, "response_types must be"),
        ({"redirect_uris": []}, "has no redirect_uris"),
        ({"redirect_uris": ["http://app.example.test/cb"]}, "unusable redirect URI"),
        ({"redirect_uris": "https://app.example.test/cb"}, "must be an array of strings"),
        ({"client_id": URL + "?"}, "not exactly its URL"),
        ({"scope": ["crm:read"]}, "scope must be a string"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "needs a jwks_uri"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": 7}, "needs a jwks_uri"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "must be none or private_key_jwt"),
    ],
)
def test_a_document_breaking_a_rule_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidDocument, match=reason):
        _client(**changes)
