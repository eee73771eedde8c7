"""Run tickets-mcp: `python -m tickets_mcp` (settings from the environment and .env)."""

from oauth_tokens.serve import serve

from tickets_mcp.settings import TicketsMcpSettings


def main() -> None:
    serve(
        "tickets-mcp",
        TicketsMcpSettings,
        "tickets_mcp.app:create_app",
        lambda s: (s.tickets_mcp_host, s.tickets_mcp_port),
        metrics_port=lambda s: s.tickets_mcp_metrics_port,
    )


if __name__ == "__main__":
    main()
