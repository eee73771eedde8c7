"""Fixtures: one headless Chromium per test module, a loopback page origin, a client registered there.

The services are the integration tests' topology (tests/integration/conftest.py), default settings.
Each test gets a fresh browser context (its own cookies), so no sign-in leaks from one test into another.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from devkit.topology import Topology
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.browser.chromium import chromium_executable
from tests.integration.browser.flow import BrowserClient, register
from tests.integration.browser.origin import OriginServer, serving_origin

# Resolved to 127.0.0.1 inside this Chromium only: a loopback page whose origin CORS_ALLOWED_ORIGINS does
# not list, as a page of a DNS-rebinding attacker's name would be.
DISALLOWED_HOST = "evil.test"
# Under a loaded CI machine a page can take seconds; a real failure still ends each wait.
TIMEOUT_MS = 20_000


# Per module, not per session: Playwright's sync API keeps its event loop marked running in this thread
# while it is started, and the async tests of later modules need the thread's loop to themselves.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    executable = chromium_executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=[f"--host-resolver-rules=MAP {DISALLOWED_HOST} 127.0.0.1"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def origin() -> Iterator[OriginServer]:
    with serving_origin() as server:
        yield server


@pytest.fixture(scope="session")
def client(topology: Topology, origin: OriginServer) -> BrowserClient:
    return register(topology, origin.callback)


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()
