"""`python -m scripts.k8s_secrets`: the local Kubernetes overlay's Secrets, from `.env`, for `kubectl create -f -`.

Prints a v1 List of the Secrets that deploy/kubernetes/overlays/local names in its secretKeyRefs (one per
service, plus postgres-secrets), filled from the `.env` `make up` generated (its keys and passwords) and a
fresh random PostgreSQL password, with each service's DATABASE_URL pointing at its own database on the
in-cluster PostgreSQL and REDIS_URL at the in-cluster Redis. Meant for a pipe into `kubectl create -f -`
(which refuses to overwrite existing Secrets: the PostgreSQL password is fixed at the database's first
start); never write its output to a file. Production Secrets come from your secret manager instead
(docs/kubernetes.md#secrets lists their names and keys).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from devkit.services import SERVICES
from dotenv import dotenv_values

NAMESPACE = "mcp"
REDIS_URL = "redis://redis:6379/0"
# Secret name -> {key in the Secret: the .env variable it is copied from}.
FROM_ENV: dict[str, dict[str, str]] = {
    "auth-server-secrets": {
        "AUTH_SERVER_STATE_KEYS": "AUTH_SERVER_STATE_KEYS",
        "DEMO_ALICE_PASSWORD": "DEMO_ALICE_PASSWORD",
        "DEMO_BOB_PASSWORD": "DEMO_BOB_PASSWORD",
    },
    "calendar-auth-server-secrets": {
        "CALENDAR_AUTH_SERVER_STATE_KEYS": "CALENDAR_AUTH_SERVER_STATE_KEYS",
        "CALENDAR_ALICE_PASSWORD": "CALENDAR_ALICE_PASSWORD",
        "CALENDAR_BOB_PASSWORD": "CALENDAR_BOB_PASSWORD",
    },
    "crm-mcp-secrets": {
        "CRM_MCP_VAULT_KEYS": "CRM_MCP_VAULT_KEYS",
        "CRM_MCP_REQUEST_STATE_KEYS": "CRM_MCP_REQUEST_STATE_KEYS",
        "WEATHER_API_KEY": "WEATHER_API_KEY",
    },
    "crm-api-secrets": {},
    "tickets-mcp-secrets": {},
    "weather-api-secrets": {"WEATHER_API_KEYS": "WEATHER_API_KEYS"},
}
# Secret name -> its service's database on the in-cluster PostgreSQL (deploy/kubernetes/overlays/local/postgres.yaml).
DATABASES = {f"{service.name}-secrets": service.database for service in SERVICES if service.database}
USES_REDIS = frozenset(
    {"auth-server-secrets", "calendar-auth-server-secrets", "crm-mcp-secrets", "weather-api-secrets"}
)


class MissingSetting(Exception):
    """A variable the Secrets need is not in `.env` (or is still a placeholder)."""


def local_secrets(env: dict[str, str], postgres_password: str) -> list[dict[str, object]]:
    """The Secret objects, with every value from `env` or derived from the PostgreSQL password."""
    objects: list[dict[str, object]] = [secret("postgres-secrets", {"POSTGRES_PASSWORD": postgres_password})]
    for name, keys in FROM_ENV.items():
        data: dict[str, str] = {}
        for key, variable in keys.items():
            value = env.get(variable) or ""
            if not value or value.startswith("<"):
                raise MissingSetting(f"{variable} is not set in .env (run make up once to generate it)")
            data[key] = value
        if name in DATABASES:
            data["DATABASE_URL"] = f"postgresql://postgres:{postgres_password}@postgres:5432/{DATABASES[name]}"
        if name in USES_REDIS:
            data["REDIS_URL"] = REDIS_URL
        objects.append(secret(name, data))
    return objects


def secret(name: str, data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": data,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.k8s_secrets", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="where make up wrote the secrets")
    arguments = parser.parse_args(argv)
    if not arguments.env_file.is_file():
        print(f"k8s_secrets: {arguments.env_file} does not exist: run make up once to generate it", file=sys.stderr)
        return 1
    env = {key: value or "" for key, value in dotenv_values(arguments.env_file).items()}
    try:
        objects = local_secrets(env, secrets.token_hex(24))
    except MissingSetting as error:
        print(f"k8s_secrets: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
