"""Two real crm-api processes on one real PostgreSQL (DATABASE_URL): a note written through one is read
through the other; `python -m crm_api migrate` migrates and exits, and with DATABASE_MIGRATE_ON_START=false
the replicas only use what it made; PostgreSQL stopped is 503 with Retry-After (never 500), and within 5 s
of its return every route works again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx2
import pytest
from devkit.local_servers import LocalServer
from devkit.processes import ServiceProcess, start_service
from devkit.tokens import TestIssuer

from tests.crm_api.conftest import AUDIENCE
from tests.support.databases import new_postgres_database, postgres

__all__ = ["postgres"]  # fixture

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]


@pytest.fixture(scope="module")
def database_env(postgres: LocalServer, issuer: TestIssuer) -> dict[str, str]:
    return {
        "AUTH_ISSUER": issuer.issuer,
        "AUTH_JWKS_URL": issuer.jwks_url,
        "CRM_API_AUDIENCE": AUDIENCE,
        "DATABASE_URL": new_postgres_database(postgres),
        "DATABASE_MIGRATE_ON_START": "false",
    }


@pytest.fixture(scope="module")
def replicas(database_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServiceProcess]]:
    workdir = tmp_path_factory.mktemp("crm-api-replicas")
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "CRM_API_", "DATABASE_"))}
    migrated = subprocess.run(
        [sys.executable, "-m", "crm_api", "migrate"],
        cwd=workdir,
        env={**scrubbed, **database_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "crm-api: database migrated (postgresql (DATABASE_URL))" in migrated.stdout
    started: list[ServiceProcess] = []
    try:
        # Both at once (start-up is mostly importing); each is kept, in order, once it is healthy.
        with ThreadPoolExecutor(max_workers=2) as pool:
            starting = [
                pool.submit(
                    start_service,
                    name,
                    "crm_api",
                    port_variable="CRM_API_PORT",
                    env=database_env,
                    workdir=workdir / name,
                    health_path="/health/ready",
                    timeout=120.0,  # a loaded 2-core runner at times needs more than the default 30 s
                )
                for name in ("crm-api-a", "crm-api-b")
            ]
        started.extend(future.result() for future in starting if future.exception() is None)
        for future in starting:
            future.result()  # a start-up failure, once every start has ended
        yield started
    finally:
        for service in started:
            service.stop()


async def test_a_note_written_through_one_replica_is_read_through_the_other(
    replicas: list[ServiceProcess], bearer: Bearer
) -> None:
    replica_a, replica_b = replicas
    async with httpx2.AsyncClient(timeout=5.0) as http:
        written = await http.post(
            f"{replica_a.url}/customers/cus_002/notes", json={"text": "via replica a"}, headers=bearer(sub="alice")
        )
        read = await http.get(f"{replica_b.url}/customers/cus_002", headers=bearer(sub="alice"))
        bobs_view = await http.get(f"{replica_b.url}/customers/cus_002", headers=bearer(sub="bob"))
    assert written.status_code == 201, written.text
    assert read.json() == written.json()
    assert read.json()["notes"][-1]["text"] == "via replica a"
    assert bobs_view.status_code == 404  # per-user separation unchanged


async def test_postgresql_down_is_503_with_retry_after_then_recovers(
    replicas: list[ServiceProcess], bearer: Bearer, postgres: LocalServer
) -> None:
    replica_a, _ = replicas
    async with httpx2.AsyncClient(base_url=replica_a.url, timeout=10.0) as http:
        assert (await http.get("/health/ready")).status_code == 200
        postgres.stop(signal.SIGINT)
        try:
            with anyio.fail_after(15):  # within one deadline, never a hang
                search = await http.get("/customers", headers=bearer(sub="alice"))
                ready = await http.get("/health/ready")
            live = await http.get("/health")
        finally:
            postgres.start()
        assert (search.status_code, search.headers["retry-after"]) == (503, "2")
        assert search.json()["error"] == "temporarily_unavailable"
        assert (ready.status_code, ready.headers["retry-after"]) == (503, "2")
        assert live.status_code == 200
        with anyio.fail_after(5):  # recovery within 5 s of the server's return
            while True:
                if (await http.get("/health/ready")).status_code == 200:
                    break
                await anyio.sleep(0.1)
        assert (await http.get("/customers", headers=bearer(sub="alice"))).json()["count"] == 4
    assert postgres.url.split("@")[0] not in replica_a.logs()  # the password never reaches a log


def test_migrate_without_a_reachable_database_fails_clearly_without_the_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "CRM_API_", "DATABASE_"))}
    secret = "postgresql://crm:not-the-password@127.0.0.1:9/crm"
    env.update({"AUTH_ISSUER": "http://localhost:9000", "CRM_API_AUDIENCE": AUDIENCE, "DATABASE_URL": secret})
    result = subprocess.run(
        [sys.executable, "-m", "crm_api", "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "crm-api: the database (DATABASE_URL) cannot be reached; nothing was migrated" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
