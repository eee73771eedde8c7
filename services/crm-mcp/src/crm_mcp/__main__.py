"""Run crm-mcp: `python -m crm_mcp` (settings from the environment and .env)."""

from oauth_tokens.serve import serve

from crm_mcp.settings import Settings


def main() -> None:
    serve(
        "crm-mcp",
        Settings,
        "crm_mcp.app:create_app",
        lambda s: (s.crm_mcp_host, s.crm_mcp_port),
        metrics_port=lambda s: s.crm_mcp_metrics_port,
    )


if __name__ == "__main__":
    main()
