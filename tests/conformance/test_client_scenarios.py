"""The official MCP conformance suite's client scenarios against the project's own OAuth client code.

For each scenario the suite starts its own mock authorization server and MCP server and runs an adapter
(adapters/<module>.py) that wires the scenario's data into oauth_tokens. The test fails with the suite's
own report when any check fails. Adding a scenario: one entry below, one adapter module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.suite import ConformanceSuite

SCENARIOS = [
    # (the suite's scenario name, the adapter module in tests/conformance/adapters/)
    ("auth/client-credentials-basic", "client_credentials_basic"),
    ("auth/client-credentials-jwt", "client_credentials_jwt"),
    # SEP-990 (pattern 5); named auth/cross-app-access-complete-flow before the suite's 0.2.0.
    ("auth/enterprise-managed-authorization", "enterprise_managed_authorization"),
    # SEP-1932 (RFC 9449): both client scenarios are in the pinned 0.2.0-alpha.12 (not scored: an extension).
    ("auth/dpop", "dpop"),
    ("auth/dpop-nonce", "dpop"),
]


@pytest.mark.parametrize(("scenario", "adapter"), SCENARIOS, ids=[scenario for scenario, _ in SCENARIOS])
def test_client_scenario_passes(suite: ConformanceSuite, scenario: str, adapter: str, tmp_path: Path) -> None:
    run = suite.client(scenario, adapter, tmp_path)
    run.assert_passed()
