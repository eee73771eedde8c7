"""PostgreSQL, Redis and HAProxy for the tests that need real shared state (devkit.local_servers).

In CI (CI set, as root) a missing server is installed from Debian's packages and a failed install fails
the test; elsewhere a missing server skips the test with the command that installs it, so `make test`
needs nothing but Python, make and git.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from devkit.local_servers import LocalServer, MissingServer, start_haproxy, start_postgres, start_redis
from devkit.processes import free_port
from devkit.scaled import Servers


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


@contextmanager
def _server(start: Callable[[bool], LocalServer], scratch: Path | None = None) -> Iterator[LocalServer]:
    try:
        server = start(_in_ci())
    except MissingServer as missing:
        if _in_ci():
            pytest.fail(str(missing), pytrace=False)
        pytest.skip(f"{missing} (CI runs these tests)")
    try:
        yield server
    finally:
        server.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _scratch(prefix: str) -> Path:
    """A directory the `postgres` user can enter (pytest's tmp_path is 0700 root-owned)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    return directory


@contextmanager
def postgres_server() -> Iterator[LocalServer]:
    """A throwaway PostgreSQL (fsync off) on a free port; `.url` is its postgresql:// URL."""
    scratch = _scratch("pg-")
    port = free_port()
    with _server(lambda install: start_postgres(scratch / "data", port, install=install, durable=False), scratch) as pg:
        yield pg


@contextmanager
def redis_server() -> Iterator[LocalServer]:
    """A Redis on a free port; `.url` is its redis:// URL with the password."""
    scratch = _scratch("redis-")
    with _server(lambda install: start_redis(scratch, free_port(), install=install), scratch) as server:
        yield server


@contextmanager
def haproxy_server(config: Path, port: int) -> Iterator[LocalServer]:
    """HAProxy with `config`, whose frontend listens on `port`."""
    with _server(lambda install: start_haproxy(config, port, install=install)) as server:
        yield server


def servers_for_tests() -> Servers:
    """The scaled topology's servers for a test: skipped (or, in CI, installed) when missing."""
    return Servers(postgres=postgres_server, redis=redis_server, haproxy=haproxy_server)
