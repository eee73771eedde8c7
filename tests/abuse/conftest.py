"""The abuse and fault suite runs against the integration tests' topology (one per test session): its
fixtures, `topology` and `exchange_topology`, are in tests/conftest.py."""
