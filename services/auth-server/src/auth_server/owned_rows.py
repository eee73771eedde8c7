"""quotas.OwnedTable's eviction policy over a SQL table that anonymous callers grow (registrations, sign-ins).

The table has `seq` (creation order), `owner` (quotas.owner_of_address) and `rank` columns. Before a row
is added, `make_room` applies the policy of quotas.py: past its owner's share, the owner's own cheapest
row ranked no higher than the new one goes; in a full table, the cheapest row (lowest rank, then of the
owner holding most, counting the row being added, then the oldest) goes. Expired rows go first. Every
row here has a rank (no "never evicted" rows). Replicas adding at the same moment may overshoot a bound
by the number of replicas: the bounds are memory guards, not exact quotas.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Row, Table, case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection


async def _count(connection: AsyncConnection, table: Table, *where: ColumnElement[bool]) -> int:
    return int((await connection.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def _evict(connection: AsyncConnection, table: Table, seq: int) -> Row[tuple[object, ...]]:
    row = (await connection.execute(select(table).where(table.c.seq == seq))).one()
    await connection.execute(delete(table).where(table.c.seq == seq))
    return row


async def make_room(
    connection: AsyncConnection,
    table: Table,
    *,
    owner: str,
    rank: int,
    expired: ColumnElement[bool],
    max_entries: int,
    max_per_owner: int,
) -> list[Row[tuple[object, ...]]]:
    """Delete what must go before `owner` adds a row ranked `rank`; the rows evicted (expired ones not included)."""
    evicted = []
    own = table.c.owner == owner
    if await _count(connection, table, own) >= max_per_owner:
        await connection.execute(delete(table).where(own, expired))
        if await _count(connection, table, own) >= max_per_owner:
            cheapest = select(table.c.seq).where(own, table.c.rank <= rank).order_by(table.c.rank, table.c.seq)
            seq = (await connection.execute(cheapest.limit(1))).scalar_one_or_none()
            if seq is not None:  # else all its rows are worth more: only the table's bound applies
                evicted.append(await _evict(connection, table, seq))
    if await _count(connection, table) >= max_entries:
        await connection.execute(delete(table).where(expired))
        if await _count(connection, table) >= max_entries:
            counts = select(table.c.owner, func.count().label("held")).group_by(table.c.owner).subquery()
            weight = counts.c.held + case((table.c.owner == owner, 1), else_=0)
            cheapest = (
                select(table.c.seq)
                .join(counts, counts.c.owner == table.c.owner)
                .order_by(table.c.rank, weight.desc(), table.c.seq)
                .limit(1)
            )
            seq = (await connection.execute(cheapest)).scalar_one_or_none()
            if seq is not None:
                evicted.append(await _evict(connection, table, seq))
    return evicted
