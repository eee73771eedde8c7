"""After every other integration test has run (this file sorts last), no secret is in any service's log."""

from __future__ import annotations

from tests.support.topology import Topology


def test_no_secret_ever_reaches_a_log(topology: Topology) -> None:
    assert all(service.logs().strip() for service in topology.services.values()), "a service wrote no log"
    logs = topology.logs()
    for name, value in topology.secrets.items():
        assert value not in logs, f"{name} appears in a service log"
    assert "eyJ" not in logs, "something JWT-shaped (a token) appears in a service log"
