"""Fixtures: an in-test token issuer and one real crm-api process that trusts it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest
from devkit.processes import ServiceProcess, start_service
from devkit.tokens import TestIssuer

AUDIENCE = "http://localhost:8003"


@pytest.fixture(scope="module")
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer() as test_issuer:
        yield test_issuer


@pytest.fixture(scope="module")
def crm_api(tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("crm-api")
    service = start_service(
        "crm-api",
        "crm_api",
        port_variable="CRM_API_PORT",
        env={
            "AUTH_ISSUER": issuer.issuer,
            "AUTH_JWKS_URL": issuer.jwks_url,
            "CRM_API_AUDIENCE": AUDIENCE,
            "CRM_API_DATA_DIR": str(workdir / "data"),
        },
        workdir=workdir,
    )
    yield service
    service.stop()


@pytest.fixture
async def client(crm_api: ServiceProcess) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=crm_api.url, timeout=5.0) as client:
        yield client


@pytest.fixture
def bearer(issuer: TestIssuer) -> Callable[..., dict[str, str]]:
    """`bearer(sub="alice", scope="crm:read")` -> an Authorization header for crm-api's audience."""

    def headers(
        *,
        sub: str = "alice",
        scope: str = "crm:read crm:write",
        aud: str = AUDIENCE,
        client_id: str = "crm-mcp",
        **claims: Any,
    ) -> dict[str, str]:
        token = issuer.mint(sub=sub, aud=aud, scope=scope, client_id=client_id, **claims)
        return {"Authorization": f"Bearer {token}"}

    return headers
