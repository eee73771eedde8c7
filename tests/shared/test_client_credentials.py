"""ClientCredentialsAuth against a real token endpoint and resource on loopback: caching, single flight, errors."""

from __future__ import annotations

import base64
import traceback
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import anyio
import httpx2
import pytest
from authlib.oauth2.rfc6749.util import extract_basic_authorization  # type: ignore[import-untyped]
from devkit.clock import ManualClock
from devkit.processes import free_port
from oauth_tokens import ClientCredentialsAuth, TokenCache, TokenEndpointError
from oauth_tokens.errors import DeadlineExceededError

from tests.shared.loopback import LoopbackAuthServer

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-Value-never-shown"


@pytest.fixture
async def auth(auth_server: LoopbackAuthServer, clock: ManualClock) -> AsyncIterator[ClientCredentialsAuth]:
    token_source = ClientCredentialsAuth(
        f"{auth_server.url}/token",
        "crm-mcp-agent",
        SECRET,
        scope="tickets:read",
        resource="http://tickets/mcp",
        cache=TokenCache(clock=clock),
    )
    yield token_source
    await token_source.aclose()


@pytest.fixture
async def resource_client(auth: ClientCredentialsAuth) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(auth=auth, verify=False, timeout=5) as client:
        yield client


async def test_token_is_cached(
    auth: ClientCredentialsAuth, resource_client: httpx2.AsyncClient, auth_server: LoopbackAuthServer
) -> None:
    first = await auth.get_token()
    assert await auth.get_token() == first
    for _ in range(3):
        assert (await resource_client.get(f"{auth_server.url}/resource")).status_code == 200
    assert auth_server.state.counts["token"] == 1
    assert auth_server.state.resource_tokens == [first] * 3


async def test_token_request_form(auth: ClientCredentialsAuth, auth_server: LoopbackAuthServer) -> None:
    await auth.get_token()
    request = auth_server.state.token_requests[0]
    assert request.form == {
        "grant_type": "client_credentials",
        "scope": "tickets:read",
        "resource": "http://tickets/mcp",
    }
    assert request.authorization is not None
    assert request.authorization.startswith("Basic ")


@pytest.mark.parametrize(
    ("expires_in", "margin", "still_cached_at", "refreshed_at"),
    [
        (60, 30, 29, 31),  # refreshed `margin` seconds before expiry
        (10, 30, 4, 6),  # lifetime shorter than the margin: refreshed at half-life, not on every call
        (None, 30, 29, 31),  # no expires_in: default_lifetime_seconds (60)
    ],
)
async def test_token_is_refreshed_before_it_expires(
    expires_in: int | None,
    margin: int,
    still_cached_at: int,
    refreshed_at: int,
    auth_server: LoopbackAuthServer,
) -> None:
    auth_server.state.token_expires_in = expires_in
    clock = ManualClock()
    auth = ClientCredentialsAuth(
        f"{auth_server.url}/token",
        "agent",
        SECRET,
        refresh_margin_seconds=margin,
        default_lifetime_seconds=60,
        cache=TokenCache(clock=clock),
    )
    first = await auth.get_token()
    start = clock.now
    clock.now = start + still_cached_at
    assert await auth.get_token() == first
    clock.now = start + refreshed_at
    assert await auth.get_token() != first
    assert auth_server.state.counts["token"] == 2
    await auth.aclose()


async def test_concurrent_callers_share_one_token_request(
    auth: ClientCredentialsAuth, auth_server: LoopbackAuthServer
) -> None:
    auth_server.state.token_delay_seconds = 0.1
    tokens: list[str] = []

    async def call() -> None:
        tokens.append(await auth.get_token())

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(call)

    assert auth_server.state.counts["token"] == 1
    assert len(tokens) == 100
    assert len(set(tokens)) == 1


async def test_cache_keys_separate_scope_and_resource(auth_server: LoopbackAuthServer) -> None:
    cache = TokenCache()
    url = f"{auth_server.url}/token"

    def source(scope: str, resource: str) -> ClientCredentialsAuth:
        return ClientCredentialsAuth(url, "agent", SECRET, scope=scope, resource=resource, cache=cache)

    sources = [
        source("tickets:read", "http://tickets/mcp"),
        source("tickets:read", "http://tickets/mcp"),  # same key: shares the first one's token
        source("tickets:read", "http://crm-api"),
        source("tickets:write", "http://tickets/mcp"),
    ]
    tokens = [await token_source.get_token() for token_source in sources]
    for token_source in sources:
        await token_source.aclose()

    assert tokens[0] == tokens[1]
    assert len(set(tokens)) == 3
    assert auth_server.state.counts["token"] == 3


async def test_401_from_the_resource_retries_once_with_a_new_token(
    auth: ClientCredentialsAuth,
    clock: ManualClock,
    resource_client: httpx2.AsyncClient,
    auth_server: LoopbackAuthServer,
) -> None:
    await auth.get_token()
    clock.now += 11  # past the 10 s cool-down: a 401 may mean a revoked token or rotated keys
    auth_server.state.resource_rejections = 1
    response = await resource_client.post(f"{auth_server.url}/resource", json={"replayed": "body"})
    assert response.status_code == 200
    assert auth_server.state.counts["token"] == 2
    assert auth_server.state.counts["resource"] == 2
    first, second = auth_server.state.resource_tokens
    assert first != second


async def test_401_twice_is_returned_after_exactly_one_retry(
    auth: ClientCredentialsAuth,
    clock: ManualClock,
    resource_client: httpx2.AsyncClient,
    auth_server: LoopbackAuthServer,
) -> None:
    await auth.get_token()
    clock.now += 11
    auth_server.state.resource_rejections = 5
    response = await resource_client.get(f"{auth_server.url}/resource")
    assert response.status_code == 401
    assert auth_server.state.counts["resource"] == 2
    assert auth_server.state.counts["token"] == 2


async def test_401_to_a_fresh_token_is_returned_without_a_retry(
    resource_client: httpx2.AsyncClient, auth_server: LoopbackAuthServer
) -> None:
    auth_server.state.resource_rejections = 1
    response = await resource_client.get(f"{auth_server.url}/resource")
    assert response.status_code == 401
    assert auth_server.state.counts["resource"] == 1
    assert auth_server.state.counts["token"] == 1


async def test_a_resource_always_answering_401_costs_one_token_request_per_cool_down(
    clock: ManualClock, resource_client: httpx2.AsyncClient, auth_server: LoopbackAuthServer
) -> None:
    auth_server.state.resource_rejections = 1_000  # e.g. it expects another audience
    for _ in range(20):
        response = await resource_client.get(f"{auth_server.url}/resource")
        assert response.status_code == 401
        clock.now += 1
    # Token 1 at t=0; refused until it is 10 s old, then dropped for token 2 at t=10, itself
    # never 10 s old by t=19. Without the cool-down: one token request per call and one per retry (21).
    assert auth_server.state.counts["token"] == 2
    assert auth_server.state.counts["resource"] == 21


async def test_invalidate_forces_a_new_token(auth: ClientCredentialsAuth, auth_server: LoopbackAuthServer) -> None:
    first = await auth.get_token()
    auth.invalidate()
    assert await auth.get_token() != first
    assert auth_server.state.counts["token"] == 2


def _assert_secret_hidden(error: TokenEndpointError) -> None:
    everything = str(error) + repr(error) + "".join(traceback.format_exception(error))
    assert SECRET not in everything


@pytest.mark.parametrize(
    ("status", "content_type", "body", "code"),
    [
        (401, "application/json", '{"error":"invalid_client","error_description":"bad client"}', "invalid_client"),
        (400, "application/json", '{"error":"invalid_scope"}', "invalid_scope"),
        (500, "text/html", "<h1>Internal Server Error</h1>", "server_error"),
        (400, "text/plain", "nope", "invalid_response"),
        (200, "application/json", '{"token_type":"Bearer"}', "invalid_response"),
        (200, "application/json", '{"access_token":"x","token_type":"DPoP"}', "invalid_response"),
        (200, "text/plain", "access_token=x", "invalid_response"),
    ],
)
async def test_token_endpoint_errors_carry_the_oauth_code(
    status: int,
    content_type: str,
    body: str,
    code: str,
    auth: ClientCredentialsAuth,
    auth_server: LoopbackAuthServer,
) -> None:
    auth_server.state.token_error = (status, content_type, body)
    with pytest.raises(TokenEndpointError) as failed:
        await auth.get_token()
    assert failed.value.error == code
    assert failed.value.status_code == status
    assert code in str(failed.value)
    _assert_secret_hidden(failed.value)


async def test_an_echoed_secret_is_redacted(auth: ClientCredentialsAuth, auth_server: LoopbackAuthServer) -> None:
    body = f'{{"error":"invalid_client","error_description":"secret {SECRET} is wrong"}}'
    auth_server.state.token_error = (401, "application/json", body)
    with pytest.raises(TokenEndpointError) as failed:
        await auth.get_token()
    assert failed.value.description == "secret [REDACTED] is wrong"
    _assert_secret_hidden(failed.value)


async def test_connection_refused_is_temporarily_unavailable() -> None:
    auth = ClientCredentialsAuth(f"http://127.0.0.1:{free_port()}/token", "agent", SECRET)
    with pytest.raises(TokenEndpointError) as failed:
        await auth.get_token()
    await auth.aclose()
    assert failed.value.error == "temporarily_unavailable"
    assert isinstance(failed.value.__cause__, httpx2.ConnectError)
    _assert_secret_hidden(failed.value)


async def test_timeout_is_temporarily_unavailable(auth_server: LoopbackAuthServer) -> None:
    auth_server.state.token_delay_seconds = 1.0
    auth = ClientCredentialsAuth(f"{auth_server.url}/token", "agent", SECRET, timeout_seconds=0.2)
    with anyio.fail_after(2):
        with pytest.raises(TokenEndpointError) as failed:
            await auth.get_token()
    await auth.aclose()
    assert failed.value.error == "temporarily_unavailable"
    assert failed.value.description == "The token endpoint did not answer within 0.2 s"
    assert isinstance(failed.value.__cause__, DeadlineExceededError | httpx2.TimeoutException)


async def test_token_requests_do_not_follow_redirects(auth_server: LoopbackAuthServer) -> None:
    auth = ClientCredentialsAuth(f"{auth_server.url}/token-redirect", "agent", SECRET)
    with pytest.raises(TokenEndpointError) as failed:
        await auth.get_token()
    await auth.aclose()
    assert (failed.value.error, failed.value.status_code) == ("invalid_response", 307)
    assert auth_server.state.counts["token"] == 0


async def test_basic_auth_form_encodes_special_characters(auth_server: LoopbackAuthServer) -> None:
    client_id, secret = "agent:one é", "p@ss:w/rd+ &=%~"
    auth = ClientCredentialsAuth(f"{auth_server.url}/token", client_id, secret)
    await auth.get_token()
    await auth.aclose()
    header = auth_server.state.token_requests[0].authorization
    assert header is not None
    # authlib's server-side parser (plain percent-decoding) and a form decoder read the same values.
    assert extract_basic_authorization({"Authorization": header}) == (client_id, secret)
    encoded_id, _, encoded_secret = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    assert (unquote_plus(encoded_id), unquote_plus(encoded_secret)) == (client_id, secret)


async def test_client_secret_post_sends_credentials_in_the_body(auth_server: LoopbackAuthServer) -> None:
    auth = ClientCredentialsAuth(
        f"{auth_server.url}/token", "agent", SECRET, auth_method="client_secret_post", scope="a b"
    )
    await auth.get_token()
    await auth.aclose()
    request = auth_server.state.token_requests[0]
    assert request.authorization is None
    assert request.form == {
        "grant_type": "client_credentials",
        "scope": "a b",
        "client_id": "agent",
        "client_secret": SECRET,
    }


def test_sync_clients_are_refused_clearly(auth_server: LoopbackAuthServer) -> None:
    auth = ClientCredentialsAuth(f"{auth_server.url}/token", "agent", SECRET)
    with httpx2.Client(auth=auth, verify=False) as client, pytest.raises(RuntimeError, match="AsyncClient"):
        client.get(f"{auth_server.url}/resource")
    assert auth_server.state.counts["resource"] == 0


def test_repr_hides_the_secret() -> None:
    auth = ClientCredentialsAuth("http://as/token", "agent", SECRET)
    assert SECRET not in repr(auth)
    assert SECRET not in repr(vars(auth).get("cache"))
    with pytest.raises(ValueError, match="auth_method"):
        ClientCredentialsAuth("http://as/token", "agent", SECRET, auth_method="private_key_jwt")  # type: ignore[arg-type]
