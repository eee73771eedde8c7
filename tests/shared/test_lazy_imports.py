"""Every service process imports redis-py only when REDIS_URL is set, and Alembic only to migrate.

A service's start-up is mostly importing, and `make test` starts services by the hundred: redis-py
(~0.7 s) and Alembic with Mako and Pygments (~0.65 s) at the top of `oauth_tokens.shared_state.connection`
and `oauth_tokens.database` made every one of them slower, though most never use Redis and a migrated
replica never needs Alembic. One fresh interpreter imports what each service's process imports (its
`__main__` and its app) and reports which of the two came along.
"""

from __future__ import annotations

import subprocess
import sys

SERVICES = ["auth_server", "calendar_api", "crm_api", "crm_mcp", "tickets_mcp", "weather_api"]
LAZY = ["redis", "alembic"]


def test_no_service_imports_redis_or_alembic_until_it_needs_them() -> None:
    # Importing a package's __main__ module by name runs its imports, not main() (that is under __name__ == "__main__").
    imports = "; ".join(f"import {service}.__main__, {service}.app" for service in SERVICES)
    report = f"import sys; print(sorted(name for name in {LAZY!r} if name in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", f"{imports}; {report}"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_check_sees_an_import_of_either() -> None:
    """The check works: a service given a Redis client imports redis-py, and one that migrates, Alembic."""
    code = (
        "import sys; from oauth_tokens.shared_state import SharedState; "
        "SharedState.from_url('redis://127.0.0.1:1', 'x'); import alembic.runtime.environment; "
        f"print(sorted(name for name in {LAZY!r} if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['alembic', 'redis']"
