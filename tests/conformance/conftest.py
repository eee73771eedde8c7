"""The conformance suite, installed (npm ci) and its Node.js found once per test session."""

from __future__ import annotations

import pytest

from tests.conformance.suite import ConformanceSuite


@pytest.fixture(scope="session")
def suite() -> ConformanceSuite:
    return ConformanceSuite()
