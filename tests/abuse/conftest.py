"""The abuse and fault suite runs against the integration tests' topology (one per test session)."""

from tests.integration.conftest import exchange_topology, topology

__all__ = ["exchange_topology", "topology"]
