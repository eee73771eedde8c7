"""Run crm-mcp: `python -m crm_mcp` (settings from the environment and .env); `python -m crm_mcp migrate`
applies its database migrations and exits (e.g. as a Kubernetes Job, with DATABASE_MIGRATE_ON_START=false)."""

import sys

from oauth_tokens.serve import serve
from oauth_tokens.service_database import run_migrate_command

from crm_mcp.settings import Settings


def main() -> None:
    if sys.argv[1:] == ["migrate"]:
        run_migrate_command("crm-mcp", Settings, Settings.database)
        return
    serve(
        "crm-mcp",
        Settings,
        "crm_mcp.app:create_app",
        lambda s: (s.crm_mcp_host, s.crm_mcp_port),
        metrics_port=lambda s: s.crm_mcp_metrics_port,
    )


if __name__ == "__main__":
    main()
