"""Run auth-server: `python -m auth_server` (cwd = repo root, so `.env` and data/auth-server resolve there).

`python -m auth_server migrate` applies the database migrations (DATABASE_URL) and exits: a deployment's
one-off job, with DATABASE_MIGRATE_ON_START=false on the replicas.
"""

import sys

from oauth_tokens.serve import serve
from oauth_tokens.service_database import run_migrate_command

from auth_server.settings import AuthServerSettings


def main() -> None:
    if sys.argv[1:] == ["migrate"]:
        run_migrate_command("auth-server", AuthServerSettings, AuthServerSettings.database)
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
