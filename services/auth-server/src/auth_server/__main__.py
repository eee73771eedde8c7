"""Run auth-server: `python -m auth_server` (cwd = repo root, so `.env` and data/auth-server resolve there).

`python -m auth_server migrate` applies the database migrations (DATABASE_URL) and exits: a deployment's
one-off job, with DATABASE_MIGRATE_ON_START=false on the replicas.
"""

import asyncio
import sys

from oauth_tokens.database import DatabaseUnavailableError
from oauth_tokens.errors import SettingsError
from oauth_tokens.logs import configure_logging
from oauth_tokens.serve import serve
from oauth_tokens.settings import load_settings

from auth_server.settings import AuthServerSettings


async def _migrate(settings: AuthServerSettings) -> None:
    from auth_server.db import engine_for, migrate_schema

    engine = engine_for(settings)
    try:
        await migrate_schema(engine)
    finally:
        await engine.dispose()


def migrate() -> None:
    """Apply the auth-server's migrations to DATABASE_URL, then exit."""
    try:
        settings = load_settings(AuthServerSettings)
    except SettingsError as error:
        raise SystemExit(f"auth-server: {error}") from None
    configure_logging(settings.log_level)
    try:
        asyncio.run(_migrate(settings))
    except DatabaseUnavailableError as error:
        raise SystemExit(f"auth-server: {error}") from None
    print("auth-server: database migrated")


def main() -> None:
    if sys.argv[1:] == ["migrate"]:
        migrate()
        return
    serve(
        "auth-server",
        AuthServerSettings,
        "auth_server.app:create_app",
        lambda s: (s.auth_server_host, s.auth_server_port),
        metrics_port=lambda s: s.auth_server_metrics_port,
        access_log=False,  # its own access log omits query strings
    )


if __name__ == "__main__":
    main()
