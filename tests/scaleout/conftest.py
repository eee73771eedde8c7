"""One scaled topology for the whole scale-out suite: PostgreSQL, Redis, HAProxy and every service's replicas.

Started once (~17 processes on a 2-core CI machine) on free ports by devkit.scaled, on
devkit.scaled_layout's layout: 3 crm-mcp replicas, 2 of everything else. Tests that break something
(a SIGKILLed replica, PostgreSQL or Redis stopped, crm-mcp in another mode) put it back before they end,
so the order of the modules does not matter. Outside CI a missing PostgreSQL, Redis or HAProxy skips the
suite with the command that installs it; in CI (CI set, as root) they are installed, and a failed
install fails.

The auth-server runs the default config plus a third user, carol, whom only the lockout test signs in
as (locking alice or bob would lock them out of every later test), with a lockout after 4 failures and
short delays between them (the policy's numbers are tests/auth_server's subject; here it is that the
count is shared).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_server.config import default_config_text
from devkit.scaled import ScaledTopology, running_scaled_topology

from tests.support.servers import servers_for_tests

LOCKOUT_AFTER = 4


def scaled_auth_server_config(directory: Path) -> Path:
    config = default_config_text()
    for old, new in {
        "failure_delay_seconds = 0.5": "failure_delay_seconds = 0.01",
        "max_failure_delay_seconds = 8.0": "max_failure_delay_seconds = 0.02",
        "max_failures = 10": f"max_failures = {LOCKOUT_AFTER}",
    }.items():
        assert old in config, f"auth-server.toml lost `{old}`: update tests/scaleout/conftest.py"
        config = config.replace(old, new)
    config += '\n[[users]]\nusername = "carol"\nname = "Carol Clark"\ntitle = "Sales rep"\n'
    config += 'password_env = "SCALEOUT_CAROL_PASSWORD"\n'
    path = directory / "auth-server.toml"
    path.write_text(config, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaledTopology]:
    workdir = tmp_path_factory.mktemp("scaled")
    workdir.chmod(0o755)
    overrides = {
        "AUTH_SERVER_CONFIG": str(scaled_auth_server_config(workdir)),
        "SCALEOUT_CAROL_PASSWORD": secrets.token_urlsafe(16),
    }
    with running_scaled_topology(workdir, replicas=3, overrides=overrides, servers=servers_for_tests()) as topology:
        yield topology
