"""Run crm-mcp: `python -m crm_mcp` (settings from the environment and .env)."""

import uvicorn
from oauth_tokens.logs import configure_logging
from oauth_tokens.settings import load_settings

from crm_mcp.app import create_app
from crm_mcp.settings import Settings


def main() -> None:
    settings = load_settings(Settings)
    configure_logging()
    uvicorn.run(create_app(settings), host=settings.crm_mcp_host, port=settings.crm_mcp_port, log_config=None)


if __name__ == "__main__":
    main()
