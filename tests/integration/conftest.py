"""The integration tests run against the whole topology: seven real processes on free loopback ports.

Its fixtures (`topology`, `exchange_topology`, `crm_api_topology`) are in tests/conftest.py, one instance of
each per test session, shared with the abuse and fault suite (tests/abuse).
"""

from __future__ import annotations

from devkit.topology import Topology

__all__ = ["Topology"]
