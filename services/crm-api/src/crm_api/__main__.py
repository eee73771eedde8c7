"""Run crm-api: `python -m crm_api` (settings from the environment and .env); `python -m crm_api migrate`
applies its database migrations and exits (e.g. as a Kubernetes Job, with DATABASE_MIGRATE_ON_START=false)."""

import sys

from oauth_tokens.serve import serve
from oauth_tokens.service_database import run_migrate_command

from crm_api.settings import CrmApiSettings


def main() -> None:
    if sys.argv[1:] == ["migrate"]:
        run_migrate_command("crm-api", CrmApiSettings, CrmApiSettings.database)
        return
    serve(
        "crm-api",
        CrmApiSettings,
        "crm_api.app:create_app",
        lambda s: (s.crm_api_host, s.crm_api_port),
        metrics_port=lambda s: s.crm_api_metrics_port,
    )


if __name__ == "__main__":
    main()
