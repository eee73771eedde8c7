"""private_key_jwt (RFC 7523) at the real auth-server, with the shared package's client: keys from a
jwks_uri or inline in the config, fetched when first needed, rotation with publish-ahead, the secret
method still selectable, and a metadata document's jwks_uri behind the SSRF guard."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import jwt
import pytest
from auth_server.client_auth import ClientAssertionVerifier, ClientKeys
from auth_server.clients import Client
from auth_server.document_fetch import FetchPolicy
from auth_server.errors import OAuthError
from oauth_tokens import ClientCredentialsAuth, TokenEndpointError
from oauth_tokens.client_assertion import CLIENT_ASSERTION_TYPE, ClientAssertionSigner, client_keys
from oauth_tokens.replay_cache import InMemoryReplayCache
from oauth_tokens.signing_keys import KeyStore, SigningKey

from tests.auth_server.conftest import AssertionServer, AuthTestEnv, start_assertion_server
from tests.auth_server.metadata_host import Answer, DocumentHost

pytestmark = pytest.mark.anyio


def _auth(
    server: AssertionServer, signer: ClientAssertionSigner, client_id: str = "crm-mcp-agent"
) -> ClientCredentialsAuth:
    resource = server.auth.tickets_mcp_resource if client_id == "crm-mcp-agent" else server.auth.crm_api_audience
    return ClientCredentialsAuth(server.auth.token_url, client_id, assertion_signer=signer, resource=resource)


async def _token_claims(auth: ClientCredentialsAuth) -> dict[str, object]:
    try:
        token = await auth.get_token()
    finally:
        await auth.aclose()
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_the_metadata_advertises_private_key_jwt_and_its_algorithms(auth: AuthTestEnv, http: httpx2.Client) -> None:
    metadata = http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    algorithms = metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert {"ES256", "RS256"} <= set(algorithms)
    assert not any(algorithm == "none" or algorithm.startswith("HS") for algorithm in algorithms)


async def test_crm_mcp_agent_gets_a_token_with_an_assertion_its_keys_fetched_once(
    assertion_server: AssertionServer,
) -> None:
    fetched_before = assertion_server.host.requests["/agent.json"]
    first = await _token_claims(_auth(assertion_server, assertion_server.signer()))
    second = await _token_claims(_auth(assertion_server, assertion_server.signer()))
    assert first["sub"] == second["sub"] == first["client_id"] == "crm-mcp-agent"
    assert first["aud"] == assertion_server.auth.tickets_mcp_resource
    # Fetched when first needed (not at start-up), then cached.
    assert assertion_server.host.requests["/agent.json"] == max(fetched_before, 1)


async def test_the_token_endpoint_url_is_an_accepted_audience_too(assertion_server: AssertionServer) -> None:
    for audience in ("token_endpoint", "issuer_and_token_endpoint"):
        claims = await _token_claims(_auth(assertion_server, assertion_server.signer(audience=audience)))
        assert claims["sub"] == "crm-mcp-agent"


async def test_a_client_with_inline_keys_authenticates_without_any_fetch(assertion_server: AssertionServer) -> None:
    claims = await _token_claims(
        _auth(assertion_server, assertion_server.signer(assertion_server.other_keys), client_id="test-inline-keys")
    )
    assert claims["sub"] == "test-inline-keys"


def test_a_private_key_jwt_client_cannot_use_a_secret_or_nothing(assertion_server: AssertionServer) -> None:
    auth = assertion_server.auth
    form = {"grant_type": "client_credentials", "resource": auth.tickets_mcp_resource}
    with httpx2.Client(timeout=10) as http:
        with_secret = http.post(auth.token_url, data=form, auth=("crm-mcp-agent", auth.agent_secret))
        bare = http.post(auth.token_url, data={**form, "client_id": "crm-mcp-agent"})
    assert (with_secret.status_code, with_secret.json()["error"]) == (401, "invalid_client")
    assert (bare.status_code, bare.json()["error"]) == (401, "invalid_client")


async def test_the_secret_method_stays_selectable(auth: AuthTestEnv, tmp_path: Path) -> None:
    """The shared fixture runs with CRM_MCP_CLIENT_AUTH_METHOD=client_secret_basic: the secret works, and
    an assertion is refused (crm-mcp-agent has no keys there)."""
    secret_auth = ClientCredentialsAuth(
        auth.token_url, "crm-mcp-agent", auth.agent_secret, resource=auth.tickets_mcp_resource
    )
    assert (await _token_claims(secret_auth))["sub"] == "crm-mcp-agent"
    signer = ClientAssertionSigner(client_keys(tmp_path), auth.issuer)
    with pytest.raises(TokenEndpointError) as refused:
        await _token_claims(
            ClientCredentialsAuth(
                auth.token_url, "crm-mcp-agent", assertion_signer=signer, resource=auth.tickets_mcp_resource
            )
        )
    assert refused.value.error == "invalid_client"


class _Later:
    """The key a KeyStore will sign with `seconds` from now (to use a published-ahead key at once)."""

    def __init__(self, keys: KeyStore, seconds: float) -> None:
        self.keys, self.seconds = keys, seconds

    def signing_key(self) -> SigningKey:
        return self.keys.signing_key(now=time.time() + self.seconds)


async def test_rotation_publishes_ahead_so_the_new_key_is_accepted_without_a_refetch(tmp_path: Path) -> None:
    server = start_assertion_server(tmp_path)
    try:
        old_kid = server.agent_keys.signing_key().kid
        server.agent_keys.rotate(publish_ahead_seconds=60)
        server.publish()  # crm-mcp serves both keys from now on; the old one still signs
        assert (await _token_claims(_auth(server, server.signer())))["sub"] == "crm-mcp-agent"
        new = _Later(server.agent_keys, 61)
        assert new.signing_key().kid != old_kid
        # A minute later the new key signs: the server knows it from the fetch it already made.
        assert (await _token_claims(_auth(server, server.signer(new))))["sub"] == "crm-mcp-agent"
        assert server.host.requests["/agent.json"] == 1

        # Rotated without publish-ahead, the new kid is unknown: one refetch per cool-down at most, so it is
        # refused until then (and a flood of unknown kids costs no fetch).
        server.agent_keys.rotate(publish_ahead_seconds=0)
        server.agent_keys.rotate(publish_ahead_seconds=0)
        server.publish()
        for _ in range(3):
            with pytest.raises(TokenEndpointError) as refused:
                await _token_claims(_auth(server, server.signer()))
            assert refused.value.error == "invalid_client"
        assert server.host.requests["/agent.json"] == 1
        assert "Client assertion refused (client 'crm-mcp-agent'): kid" in server.process.logs()
    finally:
        server.process.stop()
        server.host.stop()


async def test_a_metadata_document_jwks_uri_goes_through_the_ssrf_guard(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A metadata document's jwks_uri on loopback is refused before anything connects to it."""
    host = DocumentHost()
    try:
        host.answers["/jwks.json"] = Answer(document=client_keys(tmp_path).jwks())
        client = Client(
            client_id="https://app.example.test/client.json",
            name="App",
            grant_types=frozenset({"authorization_code"}),
            resources=("crm-mcp",),
            scopes=("crm:read",),
            from_metadata_document=True,
            # https on loopback: only the address check can refuse it (jwks_uri_trusted stays False, as in cimd.py).
            jwks_uri=host.url("/jwks.json").replace("http://", "https://"),
        )
        policy = FetchPolicy(timeout_seconds=2, max_bytes=5120, allow_loopback=False)
        keys = ClientKeys(policy, httpx2.create_ssl_context())
        verifier = ClientAssertionVerifier("http://issuer.test", keys, InMemoryReplayCache(max_entries=1000))

        async def find(client_id: str) -> Client | None:
            return client if client_id == client.client_id else None

        assertion = ClientAssertionSigner(client_keys(tmp_path), "http://issuer.test").sign(client.client_id, "")
        form = {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion}
        with pytest.raises(OAuthError) as refused:
            await verifier.authenticate(form, find)
        assert refused.value.error == "invalid_client"
        assert host.requests["/jwks.json"] == 0
        assert "loopback address" in caplog.text
    finally:
        host.stop()
