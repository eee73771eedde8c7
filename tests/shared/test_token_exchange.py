"""TokenExchange against a real token endpoint on loopback: the RFC 8693 form, cache key, expiry, single flight.

The loopback endpoint counts the requests it receives, so every count here is the server's, not the client's.
The real authorization server's side of the exchange is tested in tests/auth_server/test_token_exchange.py
and end to end in tests/integration/test_token_exchange.py.
"""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator

import anyio
import pytest
from devkit.clock import ManualClock
from devkit.processes import free_port
from oauth_tokens import TokenEndpointError, TokenExchange
from oauth_tokens.token_exchange import ExchangedTokenCache, fingerprint

from tests.shared.loopback import LoopbackAuthServer

pytestmark = pytest.mark.anyio

SECRET = "client-s3cr3t-never-shown"
SUBJECT = "alices-subject-token-never-shown"
CRM_API = "http://crm-api"


@pytest.fixture
async def exchange(auth_server: LoopbackAuthServer, clock: ManualClock) -> AsyncIterator[TokenExchange]:
    auth_server.state.token_expires_in = 600
    token_exchange = TokenExchange(
        f"{auth_server.url}/token",
        "crm-mcp-agent",
        SECRET,
        refresh_margin_seconds=10,
        cache=ExchangedTokenCache(max_entries=3, clock=clock),
        wall_clock=clock,
    )
    yield token_exchange
    await token_exchange.aclose()


async def test_the_request_is_an_rfc8693_exchange_for_one_resource_and_scope(
    exchange: TokenExchange, auth_server: LoopbackAuthServer
) -> None:
    token = await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
    assert token == "opaque-token-1"
    request = auth_server.state.token_requests[0]
    assert request.form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": SUBJECT,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "resource": CRM_API,
        "scope": "crm:read",
    }
    assert request.authorization is not None
    assert request.authorization.startswith("Basic ")


async def test_cached_per_subject_resource_and_scope(exchange: TokenExchange, auth_server: LoopbackAuthServer) -> None:
    read = await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
    assert await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read") == read
    write = await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:write")
    other_resource = await exchange.token_for(SUBJECT, resource="http://other", scope="crm:read")
    other_user = await exchange.token_for("bobs-token", resource=CRM_API, scope="crm:read")
    assert len({read, write, other_resource, other_user}) == 4
    assert auth_server.state.counts["token"] == 4


async def test_the_cache_never_holds_the_subject_token(exchange: TokenExchange) -> None:
    await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
    keys = list(exchange.cache._entries)
    assert keys == [(fingerprint(SUBJECT), CRM_API, "crm:read")]
    assert SUBJECT not in repr(keys) + repr(exchange.cache._entries) + repr(exchange)


async def test_entries_expire_before_the_exchanged_token(
    exchange: TokenExchange, auth_server: LoopbackAuthServer, clock: ManualClock
) -> None:
    first = await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
    clock.now += 589  # 600 s lifetime - 10 s margin: still usable
    assert await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read") == first
    clock.now += 1
    assert await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read") != first
    assert auth_server.state.counts["token"] == 2


async def test_entries_expire_before_the_subject_token_when_it_ends_first(
    exchange: TokenExchange, auth_server: LoopbackAuthServer, clock: ManualClock
) -> None:
    subject_exp = clock.now + 100  # the user's token ends long before the 600 s the endpoint grants
    first = await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read", subject_expires_at=subject_exp)
    clock.now += 89
    again = await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read", subject_expires_at=subject_exp)
    assert again == first
    clock.now += 1
    later = await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read", subject_expires_at=subject_exp)
    assert later != first
    # 9 s before the subject token ends, a new token is used for that one call and not kept.
    assert await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read", subject_expires_at=subject_exp)
    assert auth_server.state.counts["token"] == 3
    assert len(exchange.cache) == 0


async def test_the_cache_is_bounded_least_recently_used_first(
    exchange: TokenExchange, auth_server: LoopbackAuthServer
) -> None:
    for user in ("a", "b", "c"):
        await exchange.token_for(user, resource=CRM_API, scope="crm:read")
    await exchange.token_for("a", resource=CRM_API, scope="crm:read")  # a is now the most recent
    await exchange.token_for("d", resource=CRM_API, scope="crm:read")  # evicts b
    assert len(exchange.cache) == 3
    assert auth_server.state.counts["token"] == 4
    await exchange.token_for("a", resource=CRM_API, scope="crm:read")
    assert auth_server.state.counts["token"] == 4
    await exchange.token_for("b", resource=CRM_API, scope="crm:read")
    assert auth_server.state.counts["token"] == 5


async def test_concurrent_callers_share_one_request(exchange: TokenExchange, auth_server: LoopbackAuthServer) -> None:
    auth_server.state.token_delay_seconds = 0.2
    tokens: list[str] = []

    async def call() -> None:
        tokens.append(await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read"))

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(call)
    assert auth_server.state.counts["token"] == 1
    assert tokens == ["opaque-token-1"] * 100


async def test_concurrent_callers_share_one_failure(exchange: TokenExchange, auth_server: LoopbackAuthServer) -> None:
    auth_server.state.token_delay_seconds = 0.2
    auth_server.state.token_error = (400, "application/json", '{"error":"invalid_request"}')
    errors: list[str] = []

    async def call() -> None:
        try:
            await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
        except TokenEndpointError as error:
            errors.append(error.error)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(call)
    assert errors == ["invalid_request"] * 20
    assert auth_server.state.counts["token"] == 1
    # A failure is not cached: the next call asks again.
    auth_server.state.token_error = None
    assert await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
    assert auth_server.state.counts["token"] == 2


async def test_a_cancelled_leader_does_not_strand_the_waiters(
    exchange: TokenExchange, auth_server: LoopbackAuthServer
) -> None:
    auth_server.state.token_delay_seconds = 0.3
    leader_scope = anyio.CancelScope()
    waited: list[str] = []

    async def leader() -> None:
        with leader_scope:
            await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")

    async def waiter() -> None:
        waited.append(await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(leader)
            await anyio.sleep(0.1)  # the leader's request is in flight
            group.start_soon(waiter)
            await anyio.sleep(0.05)
            leader_scope.cancel()
    assert leader_scope.cancelled_caught
    assert waited == ["opaque-token-2"]  # the waiter led a new request of its own
    assert auth_server.state.counts["token"] == 2


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, '{"error":"invalid_request","error_description":"The subject_token is invalid"}', "invalid_request"),
        (400, '{"error":"invalid_grant","error_description":"expired"}', "invalid_grant"),
        (401, '{"error":"invalid_client"}', "invalid_client"),
        (500, "<h1>oops</h1>", "server_error"),
    ],
)
async def test_refusals_carry_the_oauth_code_and_no_secret(
    status: int, body: str, code: str, exchange: TokenExchange, auth_server: LoopbackAuthServer
) -> None:
    auth_server.state.token_error = (status, "application/json", body)
    with pytest.raises(TokenEndpointError) as failed:
        await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
    assert failed.value.error == code
    _assert_hidden(failed.value)


async def test_an_echoed_subject_token_or_secret_is_redacted(
    exchange: TokenExchange, auth_server: LoopbackAuthServer
) -> None:
    body = f'{{"error":"invalid_request","error_description":"bad {SUBJECT} for {SECRET}"}}'
    auth_server.state.token_error = (400, "application/json", body)
    with pytest.raises(TokenEndpointError) as failed:
        await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
    assert failed.value.description == "bad [REDACTED] for [REDACTED]"
    _assert_hidden(failed.value)


async def test_another_issued_token_type_is_refused(exchange: TokenExchange, auth_server: LoopbackAuthServer) -> None:
    auth_server.state.token_error = (
        200,
        "application/json",
        '{"access_token":"x","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}',
    )
    with pytest.raises(TokenEndpointError) as failed:
        await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
    assert failed.value.error == "invalid_response"


async def test_unreachable_and_timeout_are_temporarily_unavailable(auth_server: LoopbackAuthServer) -> None:
    unreachable = TokenExchange(f"http://127.0.0.1:{free_port()}/token", "agent", SECRET)
    auth_server.state.token_delay_seconds = 1.0
    slow = TokenExchange(f"{auth_server.url}/token", "agent", SECRET, timeout_seconds=0.2)
    for exchange in (unreachable, slow):
        with anyio.fail_after(3), pytest.raises(TokenEndpointError) as failed:
            await exchange.token_for(SUBJECT, resource=CRM_API, scope="crm:read")
        await exchange.aclose()
        assert failed.value.error == "temporarily_unavailable"
        _assert_hidden(failed.value)


def _assert_hidden(error: TokenEndpointError) -> None:
    everything = str(error) + repr(error) + "".join(traceback.format_exception(error))
    assert SECRET not in everything
    assert SUBJECT not in everything
