"""Pattern 4's refresh against a calendar token endpoint that hangs: one flight per user, nothing kept after.

Real parts: crm-mcp's `CalendarAccounts` and `CalendarProvider`, a real encrypted `TokenVault` in crm-mcp's
temporary SQLite database, and a loopback token endpoint that accepts connections and never answers
(tests/support/hanging.py). The grants are stored directly (refresh tokens the hanging server never reads).
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import anyio
import pytest
from crm_mcp.client_identity import ClientIdentity
from crm_mcp.downstream import DownstreamError
from crm_mcp.settings import Settings
from crm_mcp.third_party_calendar.accounts import CalendarAccounts
from crm_mcp.third_party_calendar.provider import CalendarProvider
from oauth_tokens.vault import StoredGrant

from tests.support.crm_mcp_state import crm_mcp_vault
from tests.support.hanging import misbehaving_server

pytestmark = pytest.mark.anyio

DEADLINE = 1.0
ISSUER = "http://127.0.0.1:9"  # never contacted: the token endpoint is set explicitly


def settings(token_url: str, data_dir: Path) -> Settings:
    vault_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    return Settings(
        auth_issuer=ISSUER,
        crm_mcp_resource="http://127.0.0.1:9/mcp",
        crm_mcp_downstream_timeout_seconds=DEADLINE,
        weather_api_url="http://127.0.0.1:9",
        weather_api_key="unused-weather-key",
        crm_mcp_client_id="crm-mcp-agent",
        tickets_mcp_url="http://127.0.0.1:9/mcp",
        tickets_mcp_resource="http://127.0.0.1:9/mcp",
        crm_api_url="http://127.0.0.1:9",
        crm_mcp_public_url="http://127.0.0.1:9",
        crm_mcp_data_dir=data_dir,
        crm_mcp_vault_keys=f"k1:{vault_key}",
        crm_mcp_request_state_keys=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        calendar_api_url="http://127.0.0.1:9",
        calendar_api_audience="http://127.0.0.1:9",
        calendar_auth_issuer=ISSUER,
        calendar_client_id="crm-mcp",
        calendar_token_url=token_url,
    )


async def test_concurrent_refreshes_share_one_flight_per_user_and_leave_nothing_behind(tmp_path: Path) -> None:
    users = [f"user-{n}" for n in range(20)]
    env = {
        "CRM_MCP_DATA_DIR": str(tmp_path),
        "CRM_MCP_VAULT_KEYS": f"k1:{base64.urlsafe_b64encode(os.urandom(32)).decode()}",
    }
    async with misbehaving_server() as hanging, crm_mcp_vault(env, migrate=True) as vault:
        config = settings(f"{hanging.url}/token", tmp_path)
        for user in users:  # due for refresh: expiring within the margin
            await vault.put(user, ISSUER, StoredGrant("access", f"refresh-{user}", expires_at=time.time() + 5))
        provider = CalendarProvider(config, ClientIdentity(config).calendar())
        accounts = CalendarAccounts(provider, vault, refresh_margin_seconds=60, deadline_seconds=DEADLINE)
        errors: list[str] = []

        async def call(user: str) -> None:
            with pytest.raises(DownstreamError) as failed:
                await accounts.access_token(user)
            errors.append(str(failed.value))

        try:
            with anyio.fail_after(10 * DEADLINE):  # the test itself never hangs
                async with anyio.create_task_group() as group:
                    for user in users:
                        for _ in range(3):  # three concurrent calls per user
                            group.start_soon(call, user)
        finally:
            await provider.aclose()

        assert await vault.get(users[0], ISSUER) is not None  # a refresh that timed out keeps the grant
        # ... and releases its lease: the next call refreshes at once instead of waiting for another replica.
        entry = await vault.read(users[0], ISSUER)
        assert entry is not None
        assert await vault.try_lease(users[0], ISSUER, 1, version=entry.version)

    assert len(errors) == 3 * len(users)
    assert hanging.connections == len(users)  # one refresh per user, not one per call
    assert len(accounts._refreshes) == 0  # no per-user entry outlives its calls
