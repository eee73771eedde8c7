"""crm-mcp's database as a test (or an operator) opens it: its vault and connect flows, with its settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from oauth_tokens.service_database import ServiceDatabase
from oauth_tokens.vault import TokenVault, parse_vault_keys

MIGRATIONS = "crm_mcp:migrations"


def crm_mcp_database(env: Mapping[str, str]) -> ServiceDatabase:
    """crm-mcp's database under `env`: DATABASE_URL, else <CRM_MCP_DATA_DIR>/crm-mcp.sqlite3."""
    return ServiceDatabase(
        env.get("DATABASE_URL", ""),
        default_sqlite_file=Path(env["CRM_MCP_DATA_DIR"]) / "crm-mcp.sqlite3",
        migrations=MIGRATIONS,
    )


@asynccontextmanager
async def crm_mcp_vault(env: Mapping[str, str], *, migrate: bool = False) -> AsyncIterator[TokenVault]:
    """crm-mcp's vault under `env`, opened with its keys (CRM_MCP_VAULT_KEYS)."""
    database = crm_mcp_database(env)
    try:
        if migrate:
            await database.migrate()
        yield TokenVault(database, parse_vault_keys(env["CRM_MCP_VAULT_KEYS"]))
    finally:
        await database.dispose()
