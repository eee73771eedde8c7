"""HAProxy in front of the replicas: round robin without stickiness, readiness checks, its own 503s.

Every later test relies on what this one proves: consecutive requests to one public port land on
different replicas (the `X-Served-By` header HAProxy adds names the one that answered).
"""

from __future__ import annotations

import itertools

import httpx2
from devkit.scaled import SERVED_BY, ScaledTopology


def test_consecutive_requests_land_on_different_replicas_of_every_service(scaled: ScaledTopology) -> None:
    assert scaled.layout is not None
    with httpx2.Client(timeout=5) as http:  # one keep-alive connection: HAProxy still balances per request
        for service, port in scaled.layout.public_ports.items():
            replicas = [replica.name for replica in scaled.layout.replicas[service]]
            served = [http.get(f"http://127.0.0.1:{port}/health").headers[SERVED_BY] for _ in range(2 * len(replicas))]
            assert set(served) == set(replicas), (service, served)
            if len(replicas) > 1:
                assert all(a != b for a, b in itertools.pairwise(served)), (service, served)


def test_the_layout_is_three_crm_mcp_replicas_and_two_of_everything_else_but_calendar_api(
    scaled: ScaledTopology,
) -> None:
    status = scaled.backend_status()
    assert sorted(name for name in status if name.startswith("crm-mcp-")) == ["crm-mcp-1", "crm-mcp-2", "crm-mcp-3"]
    assert sorted(name for name in status if name.startswith("auth-server-")) == ["auth-server-1", "auth-server-2"]
    assert len(status) == 3 + 2 * 5 + 1  # one calendar-api: the SaaS stand-in keeps its meetings in memory
    assert all(state.startswith("UP") for state in status.values()), status


def test_each_service_with_durable_state_has_its_own_database(scaled: ScaledTopology) -> None:
    urls = {key: value for key, value in scaled.env.items() if key.startswith("SCALED_DATABASE_URL_")}
    assert len(urls) == 5
    assert len({url.rsplit("/", 1)[1] for url in urls.values()}) == 5
    for service in ("auth-server", "crm-mcp", "crm-api", "tickets-mcp", "calendar-auth-server"):
        for process in scaled.replicas[service]:
            assert process.env["DATABASE_URL"] == urls["SCALED_DATABASE_URL_" + service.upper().replace("-", "_")]
            assert process.env["REDIS_URL"] == scaled.redis.url
