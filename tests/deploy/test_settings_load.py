"""Each Deployment's environment, as Kubernetes would build it from the overlay, is accepted by the service.

The env of every container is resolved the way the kubelet resolves it (values, keys of the overlay's
mcp-settings ConfigMap, Secret keys filled with well-formed stand-in values) and loaded by that service's own
settings class; the authorization servers also load their config file with it (the redirect URIs and
resources it names must pass the same rules as at start-up). A misspelt key, a setting the service refuses
or a URL its rules forbid fails here instead of in a pod's crash loop.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from auth_server.config import load_config
from auth_server.settings import AuthServerSettings
from calendar_api.settings import CalendarApiSettings
from crm_api.settings import CrmApiSettings
from crm_mcp.settings import Settings as CrmMcpSettings
from oauth_tokens.settings import load_settings
from pydantic_settings import BaseSettings
from tickets_mcp.settings import TicketsMcpSettings
from weather_api.settings import WeatherApiSettings

from scripts.k8s_manifests import MANIFESTS, ROOT, Manifest, render

SETTINGS: dict[str, type[BaseSettings]] = {
    "auth-server": AuthServerSettings,
    "calendar-auth-server": AuthServerSettings,
    "crm-mcp": CrmMcpSettings,
    "tickets-mcp": TicketsMcpSettings,
    "crm-api": CrmApiSettings,
    "weather-api": WeatherApiSettings,
    "calendar-api": CalendarApiSettings,
}


def secret_value(key: str) -> str:
    """A well-formed stand-in for the Secret key `key` (what scripts.k8s_secrets or a secret manager puts there)."""
    if key == "CRM_MCP_VAULT_KEYS":
        return "k1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    if key == "DATABASE_URL":
        return "postgresql://service:password@postgres:5432/service"
    if key == "REDIS_URL":
        return "redis://redis:6379/0"
    return secrets.token_urlsafe(32)


def resolved_env(container: Manifest, config_map: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for variable in container["env"]:
        source: dict[str, Any] = variable.get("valueFrom", {})
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif "configMapKeyRef" in source:
            key = source["configMapKeyRef"]["key"]
            assert key in config_map, f"{container['name']}: mcp-settings has no key {key}"
            env[variable["name"]] = config_map[key]
        elif "secretKeyRef" in source and not source["secretKeyRef"].get("optional"):
            env[variable["name"]] = secret_value(source["secretKeyRef"]["key"])
    return env


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_every_deployment_environment_loads_in_its_service(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(MANIFESTS / "overlays" / overlay)
    (config_map,) = [o["data"] for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "mcp-settings"]
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == set(SETTINGS)
    monkeypatch.chdir(tmp_path)  # no .env here
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = resolved_env(container, config_map)
        # The pod's paths, on this machine: its data directory, and the calendar's config (the ConfigMap is
        # that file: tests/deploy/test_manifests.py keeps them equal).
        for key in [key for key, value in env.items() if value == "/app/data"]:
            env[key] = str(tmp_path / name)
        if "AUTH_SERVER_CONFIG" in env:
            env["AUTH_SERVER_CONFIG"] = str(ROOT / "services" / "calendar-api" / "auth-server.toml")
        for key in list(os.environ):
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(SETTINGS[name])
        if isinstance(settings, AuthServerSettings):
            load_config(settings.auth_server_config, env)
