"""Run crm-api: `python -m crm_api` (settings from the environment and .env)."""

from oauth_tokens.serve import serve

from crm_api.settings import CrmApiSettings


def main() -> None:
    serve(
        "crm-api",
        CrmApiSettings,
        "crm_api.app:create_app",
        lambda s: (s.crm_api_host, s.crm_api_port),
        metrics_port=lambda s: s.crm_api_metrics_port,
    )


if __name__ == "__main__":
    main()
