"""The auth-server's durable stores on a real SQLite file and a real PostgreSQL: single use of codes and
refresh tokens across two engines (two replicas), reuse detection, and the bounded tables' eviction policy."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from auth_server.clients import Client, ClientRegistry
from auth_server.codes import AuthorizationCodeStore, AuthorizationGrant, s256_challenge
from auth_server.errors import OAuthError
from auth_server.pending import PendingAuthorization, PendingAuthorizations
from auth_server.refresh_tokens import RefreshTokenStore
from auth_server.registrations import Registrations
from auth_server.tables import metadata
from oauth_tokens.database import async_url, create_engine
from oauth_tokens.service_database import ServiceDatabase
from sqlalchemy import Connection, text

from tests.support.servers import postgres_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL server for the module; each test gets its own database in it."""
    with postgres_server() as server:
        yield server.url


async def _new_postgres_database(server_url: str) -> str:
    name = f"auth_{secrets.token_hex(6)}"
    admin = create_engine(async_url(server_url))
    try:
        async with admin.connect() as connection:
            await (await connection.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text(f"CREATE DATABASE {name}")
            )
    finally:
        await admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


Pair = tuple[ServiceDatabase, ServiceDatabase]


def _database(url: str, tmp_path: Path) -> ServiceDatabase:
    return ServiceDatabase(url, default_sqlite_file=tmp_path / "unused.db", migrations="auth_server:migrations")


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind, as DATABASE_URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'auth-server.db'}"
    else:
        url = await _new_postgres_database(request.getfixturevalue("postgres_url"))
    database = _database(url, tmp_path)
    await database.migrate()
    await database.dispose()
    return url


@pytest.fixture
async def databases(database_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    """Two ServiceDatabases (engines) on one database: what two replicas hold."""
    pair = (_database(database_url, tmp_path), _database(database_url, tmp_path))
    yield pair
    for database in pair:
        await database.dispose()


async def test_the_migrations_create_exactly_the_schema_tables_py_describes(
    databases: Pair,
) -> None:
    def differences(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with databases[0].engine.connect() as connection:
        assert await connection.run_sync(differences) == []


def _grant(client_id: str = "app") -> AuthorizationGrant:
    return AuthorizationGrant(
        client_id=client_id,
        subject="alice",
        resource="crm-mcp",
        scopes=("crm:read", "crm:write"),
        redirect_uri="http://localhost:1/cb",
        redirect_uri_in_request=True,
        code_challenge=s256_challenge("v" * 43),
    )


async def _family(store: RefreshTokenStore) -> tuple[str, str]:
    return await store.issue(
        client_id="app", subject="alice", resource="crm-mcp", scopes=("crm:read",), expires_at=time.time() + 3600
    )


async def test_a_code_issued_at_one_replica_redeems_once_at_another(
    databases: Pair,
) -> None:
    at_a, at_b = (AuthorizationCodeStore(60, database) for database in databases)
    code = await at_a.issue(_grant())
    _, grant = await at_b.redeem(code, "app")
    assert (grant.subject, grant.scopes, grant.redirect_uri_in_request) == ("alice", ("crm:read", "crm:write"), True)
    with pytest.raises(OAuthError, match="invalid_grant"):
        await at_a.redeem(code, "app")


async def test_one_code_redeemed_at_two_replicas_at_once_redeems_once(
    databases: Pair,
) -> None:
    at_a, at_b = (AuthorizationCodeStore(60, database) for database in databases)
    for _ in range(5):
        code = await at_a.issue(_grant())
        outcomes = await asyncio.gather(at_a.redeem(code, "app"), at_b.redeem(code, "app"), return_exceptions=True)
        assert sorted(type(outcome).__name__ for outcome in outcomes) == ["OAuthError", "tuple"]


async def test_a_code_for_another_client_or_expired_is_invalid_and_spent(
    databases: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AuthorizationCodeStore(60, databases[0])
    code = await store.issue(_grant())
    with pytest.raises(OAuthError, match="invalid_grant"):
        await store.redeem(code, "someone-else")
    with pytest.raises(OAuthError, match="invalid_grant"):
        await store.redeem(code, "app")  # the wrong client's attempt spent it
    expired = await store.issue(_grant())
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(OAuthError, match="invalid_grant"):
        await store.redeem(expired, "app")


@pytest.mark.parametrize("replay_first", [False, True])
async def test_a_replayed_code_revokes_the_grant_it_started_whichever_comes_first(
    databases: Pair, replay_first: bool
) -> None:
    codes_a, codes_b = (AuthorizationCodeStore(60, database) for database in databases)
    refresh = RefreshTokenStore(databases[0])
    code = await codes_a.issue(_grant())
    digest, _ = await codes_a.redeem(code, "app")
    token, family_id = await _family(refresh)
    if replay_first:  # the replay lands before the first redemption recorded its refresh family
        with pytest.raises(OAuthError):
            await codes_b.redeem(code, "app")
        await codes_a.record_family(digest, family_id, time.time() + 3600)
    else:
        await codes_a.record_family(digest, family_id, time.time() + 3600)
        with pytest.raises(OAuthError):
            await codes_b.redeem(code, "app")
    with pytest.raises(OAuthError, match="invalid_grant"):
        await refresh.lookup(token, "app")


async def test_a_refresh_token_issued_at_one_replica_rotates_at_another(
    databases: Pair,
) -> None:
    at_a, at_b = (RefreshTokenStore(database) for database in databases)
    token, _ = await _family(at_a)
    record = await at_b.lookup(token, "app")
    successor = await at_b.rotate(token, record, ("crm:read",))
    assert (await at_a.lookup(successor, "app")).family_id == record.family_id
    with pytest.raises(OAuthError, match="invalid_grant"):
        await at_b.lookup(token, "someone-else")


async def test_a_reused_refresh_token_revokes_the_family(databases: Pair) -> None:
    store = RefreshTokenStore(databases[0])
    token, _ = await _family(store)
    successor = await store.rotate(token, await store.lookup(token, "app"), ("crm:read",))
    with pytest.raises(OAuthError) as reused:
        await store.lookup(token, "app")
    assert "already used" in reused.value.description
    with pytest.raises(OAuthError, match="invalid_grant"):
        await store.lookup(successor, "app")  # the whole grant is gone


async def test_two_concurrent_rotations_at_two_replicas_one_wins_and_the_family_is_revoked(
    databases: Pair,
) -> None:
    at_a, at_b = (RefreshTokenStore(database) for database in databases)
    for _ in range(5):
        token, _ = await _family(at_a)
        # Both looked the token up before either rotated: the race RFC 9700 warns of.
        record_a, record_b = await at_a.lookup(token, "app"), await at_b.lookup(token, "app")
        outcomes = await asyncio.gather(
            at_a.rotate(token, record_a, ("crm:read",)),
            at_b.rotate(token, record_b, ("crm:read",)),
            return_exceptions=True,
        )
        winners = [outcome for outcome in outcomes if isinstance(outcome, str)]
        losers = [outcome for outcome in outcomes if isinstance(outcome, OAuthError)]
        assert (len(winners), len(losers)) == (1, 1), outcomes
        with pytest.raises(OAuthError, match="invalid_grant"):
            await at_a.lookup(winners[0], "app")  # reuse revoked the family, the winner's token too


async def test_revocation_ends_the_family_for_its_own_client_only(
    databases: Pair,
) -> None:
    at_a, at_b = (RefreshTokenStore(database) for database in databases)
    token, _ = await _family(at_a)
    assert await at_b.revoke(token, "someone-else") is False
    await at_a.lookup(token, "app")
    assert await at_b.revoke(token, "app") is True
    with pytest.raises(OAuthError, match="invalid_grant"):
        await at_a.lookup(token, "app")


def _registered(number: int) -> Client:
    return Client(
        client_id=f"dyn-{number}",
        name=f"app {number}",
        grant_types=frozenset({"authorization_code"}),
        resources=("crm-mcp",),
        scopes=("crm:read",),
        redirect_uris=("http://localhost:1/cb",),
        dynamically_registered=True,
    )


def _registry(database: ServiceDatabase, max_clients: int, per_address: int) -> ClientRegistry:
    registrations = Registrations(database, max_clients=max_clients, max_per_address=per_address, unused_seconds=3600)
    return ClientRegistry([], realm="test", registrations=registrations)


async def _present(registry: ClientRegistry, *numbers: int) -> list[bool]:
    return [await registry.get(f"dyn-{number}") is not None for number in numbers]


async def test_a_full_registry_forgets_the_heaviest_addresses_unused_registration(
    databases: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    registry = _registry(databases[0], max_clients=4, per_address=3)
    await registry.register(_registered(1), address="10.0.0.1")  # a real client, used
    await registry.mark_used(_registered(1))
    for number in (2, 3, 4):  # then a flood from one address fills the table
        await registry.register(_registered(number), address="10.0.0.9")
    await registry.register(_registered(5), address="10.0.0.2")  # a new client from elsewhere still registers
    assert await _present(registry, 1, 2, 3, 4, 5) == [True, False, True, True, True]
    await registry.register(_registered(6), address="10.0.0.9")  # past its share: the flood loses its own oldest
    assert await _present(registry, 3, 1, 5) == [False, True, True]
    other_replica = _registry(databases[1], max_clients=4, per_address=3)
    assert await other_replica.get("dyn-6") == _registered(6)  # every replica knows a registration


async def test_a_used_registration_goes_only_when_no_unused_one_is_left(
    databases: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    registry = _registry(databases[0], max_clients=2, per_address=2)
    await registry.register(_registered(1), address="10.0.0.1")
    await registry.register(_registered(2), address="10.0.0.2")
    await registry.mark_used(_registered(2))
    await registry.register(_registered(3), address="10.0.0.2")
    assert await _present(registry, 1, 2) == [False, True]  # unused went first
    await registry.mark_used(_registered(3))
    await registry.register(_registered(4), address="10.0.0.3")  # all used: the heaviest address's oldest goes
    assert await _present(registry, 2, 3) == [False, True]


async def test_an_addresss_share_bounds_its_unused_registrations_not_its_used_ones(
    databases: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    registry = _registry(databases[0], max_clients=10, per_address=1)
    await registry.register(_registered(1), address="10.0.0.1")
    await registry.mark_used(_registered(1))  # e.g. one colleague behind the office NAT signed in with it
    await registry.register(_registered(2), address="10.0.0.1")  # beyond the share, nothing used goes
    await registry.register(_registered(3), address="10.0.0.1")  # a third: the unused one of the share makes room
    assert await _present(registry, 1, 2, 3) == [True, False, True]


async def test_registrations_never_used_expire_used_ones_stay(databases: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    registry = _registry(databases[0], max_clients=2, per_address=2)
    await registry.register(_registered(1), address="10.0.0.1")
    await registry.register(_registered(2), address="10.0.0.1")
    await registry.mark_used(_registered(2))  # it obtained a token
    now += 3600
    assert await _present(registry, 1, 2) == [False, True]


async def _pend(store: PendingAuthorizations, address: str = "10.0.0.1") -> PendingAuthorization:
    return await store.create(
        address=address,
        client_id="app",
        redirect_uri="http://localhost:1/cb",
        redirect_uri_in_request=True,
        state=None,
        code_challenge="c" * 43,
        resource="crm-mcp",
        scopes=("crm:read",),
    )


async def test_a_full_pending_store_evicts_the_flood_and_expired_entries_go(
    databases: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = 1_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    store = PendingAuthorizations(databases[0], lifetime_seconds=600, max_entries=4, max_per_address=3)
    user = await _pend(store, "10.0.0.1")
    flood = [await _pend(store, "10.0.0.9") for _ in range(4)]  # past its share of 3: its own oldest went
    assert await store.get(flood[0].request_id) is None
    newcomer = await _pend(store, "10.0.0.2")  # full: the flood's oldest goes, not the user's
    assert await store.get(flood[1].request_id) is None
    assert await store.get(user.request_id) == user
    assert await store.get(newcomer.request_id) == newcomer
    now += 601
    assert await store.get(user.request_id) is None  # expired


async def test_a_signed_in_pending_request_outlives_unfinished_ones(
    databases: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    store = PendingAuthorizations(databases[0], lifetime_seconds=600, max_entries=2, max_per_address=2)
    first, second = await _pend(store), await _pend(store)
    await store.sign_in(first, "alice")  # signed in, deciding on consent
    await _pend(store)
    assert (await store.get(first.request_id), await store.get(second.request_id)) == (first, None)


async def test_a_sign_in_started_at_one_replica_is_decided_once_at_either(
    databases: Pair,
) -> None:
    at_a, at_b = (PendingAuthorizations(database) for database in databases)
    pending = await _pend(at_a)
    assert await at_b.take(pending.request_id) is False  # nobody signed in yet: nothing to decide
    await at_b.sign_in(pending, "alice")
    assert (await at_a.get(pending.request_id)) == pending
    decisions = await asyncio.gather(at_a.take(pending.request_id), at_b.take(pending.request_id))
    assert sorted(decisions) == [False, True]
    assert await at_b.get(pending.request_id) is None
