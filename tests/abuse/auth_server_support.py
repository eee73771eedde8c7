"""Helpers for the auth-server abuse tests: a scaled-down auth-server process, and HTTP clients that send
from other loopback addresses (127.0.0.2, 127.0.0.3, ...), so that one test plays many attackers and
users, each with an address of its own. Linux routes all of 127.0.0.0/8 to loopback; nothing leaves it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx2

from tests.auth_server.conftest import AuthTestEnv, start_auth_server


@contextmanager
def scaled_auth_server(
    workdir: Path, changes: Mapping[str, str], extra_env: Mapping[str, str] | None = None
) -> Iterator[AuthTestEnv]:
    """A real auth-server whose shipped config has `changes` applied (each line must be found)."""
    env, process = start_auth_server(workdir, config_changes=changes, extra_env=extra_env)
    try:
        yield env
    finally:
        process.stop()


@contextmanager
def from_address(last_octet: int, cookies: httpx2.Cookies | None = None) -> Iterator[httpx2.Client]:
    """An HTTP client whose requests come from 127.0.0.<last_octet> (with a browser's cookies, if given)."""
    transport = httpx2.HTTPTransport(local_address=f"127.0.0.{last_octet}")
    with httpx2.Client(transport=transport, cookies=cookies, timeout=10.0, follow_redirects=False) as client:
        yield client
