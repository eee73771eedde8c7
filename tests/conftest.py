"""Test-wide fixtures: the anyio backend, the whole topology (one per test session), and a SIGTERM that
tears fixtures down.

`topology` and `exchange_topology` live here, not in tests/integration/conftest.py, so the integration tests
and the abuse and fault suite (tests/abuse) share one instance of each: a session fixture defined (or
imported) in two conftest files is two fixtures, and each started its own seven processes. Every secret is
generated for the run, so tests can prove none of them ever shows up in a log or a result. `topology` runs
the default CRM_API_AUTH_MODE (cascade); a test of crm-mcp → crm-api takes `crm_api_topology` instead and
runs once per mode, the exchange one on a second topology started (once per session) only when such a test
runs. A test that must change a service's settings starts its own process or topology.

Many fixtures start real service processes. Python's default SIGTERM ends pytest at once, skipping every
fixture's teardown, so a `timeout` wrapper or a cancelled CI job left those services running and holding
their ports. Turning SIGTERM into KeyboardInterrupt lets pytest stop the way Ctrl-C does: the current test
is interrupted and every fixture's teardown stops what it started.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest
from devkit.topology import Topology, running_topology


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with running_topology(tmp_path_factory.mktemp("topology"), traced=True) as topology:
        yield topology


@pytest.fixture(scope="session")
def exchange_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The topology with CRM_API_AUTH_MODE=exchange: crm-mcp exchanges the user's token (RFC 8693)."""
    with running_topology(tmp_path_factory.mktemp("topology-exchange"), crm_api_auth_mode="exchange") as topology:
        yield topology


@pytest.fixture(params=["cascade", "exchange"])
def crm_api_topology(request: pytest.FixtureRequest) -> Topology:
    """The topology in each CRM_API_AUTH_MODE: pattern 3 (cascade) and pattern 3b (exchange)."""
    return request.getfixturevalue("topology" if request.param == "cascade" else "exchange_topology")
