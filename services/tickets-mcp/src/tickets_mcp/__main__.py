"""Entry point: `python -m tickets_mcp` loads settings, configures logging and serves the app."""

from __future__ import annotations

from oauth_tokens.errors import SettingsError
from oauth_tokens.logs import configure_logging
from oauth_tokens.settings import load_settings

from tickets_mcp.settings import TicketsMcpSettings


def main() -> None:
    try:
        settings = load_settings(TicketsMcpSettings)
    except SettingsError as error:
        raise SystemExit(f"tickets-mcp: {error}") from None
    configure_logging(settings.log_level)
    # Imported only now, so a configuration error is reported before the slow imports.
    import uvicorn

    from tickets_mcp.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.tickets_mcp_host,
        port=settings.tickets_mcp_port,
        log_config=None,
    )


if __name__ == "__main__":
    main()
