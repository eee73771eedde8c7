"""Dynamically registered clients (RFC 7591) in the database, so every replica knows them.

Registrations are bounded like quotas.OwnedTable (owned_rows.py), owned by the registering address: at
most `max_clients` in all and `max_per_address` never-used ones per address. Past either, one is forgotten
to make room: a never-used one before a used one, and of the address holding the most first, so a flood
of junk registrations evicts itself and never blocks a new client. A registration not used to obtain a
token within `unused_seconds` expires; a used one is kept until a flood of used registrations (which
needs users' sign-ins) from its address pushes it out. Registered clients are public: no secret is stored.
"""

from __future__ import annotations

import json
import time
from typing import Any

from oauth_tokens.service_database import ServiceDatabase
from sqlalchemy import insert, select, update

from auth_server.clients import Client
from auth_server.owned_rows import make_room
from auth_server.tables import registered_clients


def _to_json(client: Client) -> str:
    return json.dumps(
        {
            "name": client.name,
            "grant_types": sorted(client.grant_types),
            "resources": list(client.resources),
            "scopes": list(client.scopes),
            "redirect_uris": list(client.redirect_uris),
        }
    )


def _from_json(client_id: str, text: str) -> Client:
    fields: dict[str, Any] = json.loads(text)
    return Client(
        client_id=client_id,
        name=fields["name"],
        grant_types=frozenset(fields["grant_types"]),
        resources=tuple(fields["resources"]),
        scopes=tuple(fields["scopes"]),
        redirect_uris=tuple(fields["redirect_uris"]),
        dynamically_registered=True,
    )


class Registrations:
    """The registered clients' table under the policy in the module docstring."""

    def __init__(
        self, database: ServiceDatabase, *, max_clients: int, max_per_address: int, unused_seconds: float
    ) -> None:
        self._database = database
        self._max_clients = max_clients
        self._max_per_address = max_per_address
        self._unused_seconds = unused_seconds

    def _expired(self, now: float) -> Any:
        table = registered_clients.c
        return (table.rank == 0) & (table.registered_at <= now - self._unused_seconds)

    async def get(self, client_id: str) -> Client | None:
        """The registered client `client_id`, unless it expired unused."""
        query = select(registered_clients.c.client, registered_clients.c.rank, registered_clients.c.registered_at)
        async with self._database.transaction() as connection:
            row = (await connection.execute(query.where(registered_clients.c.client_id == client_id))).one_or_none()
        if row is None or (row.rank == 0 and row.registered_at <= time.time() - self._unused_seconds):
            return None
        return _from_json(client_id, row.client)

    async def add(self, client: Client, owner: str) -> list[tuple[str, bool]]:
        """Register `client` for `owner`; the (client_id, used) of the registrations forgotten to make room."""
        now = time.time()
        async with self._database.transaction() as connection:
            evicted = await make_room(
                connection,
                registered_clients,
                owner=owner,
                rank=0,
                expired=self._expired(now),
                max_entries=self._max_clients,
                max_per_owner=self._max_per_address,
            )
            await connection.execute(
                insert(registered_clients).values(
                    client_id=client.client_id, owner=owner, rank=0, registered_at=now, client=_to_json(client)
                )
            )
        return [(str(row.client_id), bool(row.rank)) for row in evicted]

    async def mark_used(self, client_id: str) -> None:
        """The client obtained a token: its registration no longer expires."""
        async with self._database.transaction() as connection:
            await connection.execute(
                update(registered_clients)
                .where(registered_clients.c.client_id == client_id, registered_clients.c.rank == 0)
                .values(rank=1)
            )
