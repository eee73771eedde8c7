"""The whole topology, started once per test session as five real processes on free loopback ports.

Every secret is generated for the run, so tests can prove none of them ever shows up in a log or a result.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.topology import SERVICES, Topology, running_topology

__all__ = ["SERVICES", "Topology"]


@pytest.fixture(scope="session")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with running_topology(tmp_path_factory.mktemp("topology"), traced=True) as topology:
        yield topology
