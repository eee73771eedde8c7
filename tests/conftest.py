"""Test-wide set-up: the anyio backend for async tests, and a SIGTERM that tears fixtures down.

Many fixtures start real service processes. Python's default SIGTERM ends pytest at once, skipping
every fixture's teardown, so a `timeout` wrapper or a cancelled CI job left those services running and
holding their ports. Turning SIGTERM into KeyboardInterrupt lets pytest stop the way Ctrl-C does:
the current test is interrupted and every fixture's teardown stops what it started.
"""

import signal
from types import FrameType

import pytest


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
