"""Run tickets-mcp: `python -m tickets_mcp` (settings from the environment and .env); `python -m tickets_mcp
migrate` applies its database migrations and exits (e.g. a Kubernetes Job, DATABASE_MIGRATE_ON_START=false)."""

import sys

from oauth_tokens.serve import serve
from oauth_tokens.service_database import run_migrate_command

from tickets_mcp.settings import TicketsMcpSettings


def main() -> None:
    if sys.argv[1:] == ["migrate"]:
        run_migrate_command("tickets-mcp", TicketsMcpSettings, TicketsMcpSettings.database)
        return
    serve(
        "tickets-mcp",
        TicketsMcpSettings,
        "tickets_mcp.app:create_app",
        lambda s: (s.tickets_mcp_host, s.tickets_mcp_port),
        metrics_port=lambda s: s.tickets_mcp_metrics_port,
    )


if __name__ == "__main__":
    main()
