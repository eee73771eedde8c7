"""One scaled topology for the whole scale-out suite: PostgreSQL, Redis, HAProxy and every service's replicas.

Started once (it is ~17 processes on a 2-core CI machine) on free ports by tests.support.scaled, on
scripts.scaled_topology's layout: 3 crm-mcp replicas, 2 of everything else. Tests that break something
(a SIGKILLed replica, PostgreSQL or Redis stopped) put it back before they end, so the order of the
modules does not matter. Outside CI a missing PostgreSQL, Redis or HAProxy skips the suite with the
command that installs it; in CI (CI set, as root) they are installed, and a failed install fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.scaled import ScaledTopology, running_scaled_topology


@pytest.fixture(scope="session")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaledTopology]:
    workdir = tmp_path_factory.mktemp("scaled")
    workdir.chmod(0o755)
    with running_scaled_topology(workdir, replicas=3) as topology:
        yield topology
