"""Entry point: `python -m crm_api` loads settings, configures logging and serves the app."""

from __future__ import annotations

from oauth_tokens.errors import SettingsError
from oauth_tokens.logs import configure_logging
from oauth_tokens.settings import load_settings

from crm_api.settings import CrmApiSettings


def main() -> None:
    try:
        settings = load_settings(CrmApiSettings)
    except SettingsError as error:
        raise SystemExit(f"crm-api: {error}") from None
    configure_logging(settings.log_level)
    # Imported only now, so a configuration error is reported before the slow imports.
    import uvicorn

    from crm_api.app import create_app

    uvicorn.run(create_app(settings), host=settings.crm_api_host, port=settings.crm_api_port, log_config=None)


if __name__ == "__main__":
    main()
