"""The services with panva/oidc-provider as their authorization server instead of our own auth-server.

oidc-provider (OpenID Certified, pinned in oidc_provider/package.json) runs as a real Node.js process on a
free loopback port, configured by oidc_provider/provider.mjs. The four other services run as in the
integration suite, with the settings of `.env.oidc-provider.example` applied the way
docs/hosted-provider.md tells a reader to (placeholders filled, the provider's URL put in): no other
setting and no code differs.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from devkit.processes import ServiceProcess, free_port
from devkit.services import SERVICES
from devkit.topology import DATA_DIR_VARIABLES, Topology, topology_env
from dotenv import dotenv_values

from tests.docs.markdown import ROOT
from tests.support.node import node_tool, npm_ci

PROVIDER_DIR = ROOT / "tests" / "interop" / "oidc_provider"
PROFILE = ROOT / ".env.oidc-provider.example"
PURPOSE = "The interop suite (panva/oidc-provider)"
PROFILE_ISSUER = "http://localhost:3000"
PLACEHOLDER = re.compile(r"^<[^<>]+>$")
# The resource identifiers are the topology's own (its ports), whatever the profile's example values.
RESOURCE_VARIABLES = ("CRM_MCP_RESOURCE", "TICKETS_MCP_RESOURCE", "CRM_API_AUDIENCE")
# A second machine client whose tokens live one second: to get a really expired token from the provider.
EXPIRING_CLIENT = "expiring-probe"


@dataclass
class Interop:
    """The running topology, oidc-provider, and what the provider was configured with."""

    topology: Topology
    provider: ServiceProcess
    issuer: str
    probe_secret: str
    # A second crm-mcp, in token-exchange mode (pattern 3b), beside the topology's cascade-mode one.
    exchange_crm_mcp_url: str


def profile_env(issuer: str, generated: dict[str, str]) -> dict[str, str]:
    """`.env.oidc-provider.example` applied: placeholders get the run's secrets, the issuer its real URL."""
    env: dict[str, str] = {}
    for name, value in dotenv_values(PROFILE).items():
        value = value or ""
        if name == "COMPOSE_PROFILES":  # read by `make up` and compose, not by a service
            continue
        if name in RESOURCE_VARIABLES or PLACEHOLDER.match(value):
            value = generated[name]
        env[name] = value.replace(PROFILE_ISSUER, issuer)
    return env


def provider_env(topology: Topology, issuer: str, probe_secret: str, exchange_resource: str) -> dict[str, str]:
    """oidc-provider's configuration: which resources exist, for whom, and crm-mcp's machine client."""
    env = topology.env
    user_scopes = "crm:read crm:write tickets:read tickets:write weather:read"
    resources = {
        env["CRM_MCP_RESOURCE"]: {"scope": user_scopes, "clients": "users"},
        exchange_resource: {"scope": user_scopes, "clients": "users"},
        env["TICKETS_MCP_RESOURCE"]: {"scope": "tickets:read tickets:write", "clients": env["CRM_MCP_CLIENT_ID"]},
        env["CRM_API_AUDIENCE"]: {"scope": "crm:read crm:write", "clients": "none"},
    }
    return {
        "INTEROP_ISSUER": issuer,
        "INTEROP_PORT": env["AUTH_SERVER_PORT"],
        "INTEROP_RESOURCES": json.dumps(resources),
        "INTEROP_M2M_CLIENT": json.dumps(
            {"client_id": env["CRM_MCP_CLIENT_ID"], "client_secret": env["CRM_MCP_CLIENT_SECRET"]}
        ),
        "INTEROP_PROBE_CLIENT": json.dumps({"client_id": EXPIRING_CLIENT, "client_secret": probe_secret}),
        # RFC 8693: a user's token for crm-mcp may be exchanged (by crm-mcp's client) for one for crm-api.
        "INTEROP_EXCHANGE": json.dumps(
            {env["CRM_MCP_RESOURCE"]: env["CRM_API_AUDIENCE"], exchange_resource: env["CRM_API_AUDIENCE"]}
        ),
    }


@pytest.fixture(scope="module")
def interop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interop]:
    node = node_tool("node", PURPOSE)
    npm_ci(PROVIDER_DIR, PURPOSE)
    workdir: Path = tmp_path_factory.mktemp("interop")
    generated = topology_env()
    # The oidc-provider profile authenticates crm-mcp with a secret (the local topology has none).
    generated["CRM_MCP_CLIENT_SECRET"] = secrets.token_urlsafe(32)
    issuer = f"http://127.0.0.1:{generated['AUTH_SERVER_PORT']}"
    env = {**generated, **profile_env(issuer, generated)}
    # The test topology names the local auth-server's token endpoint; the profile empties it (discovery).
    assert env["AUTH_TOKEN_URL"] == ""
    env.update({variable: str(workdir / name / "data") for name, variable in DATA_DIR_VARIABLES.items()})
    # Provider-independent: a one-second leeway, so the expired-token test need not wait out the default 30 s.
    env["AUTH_LEEWAY_SECONDS"] = "1"
    topology = Topology(env=env, workdir=workdir)
    probe_secret = "probe-" + generated["CRM_MCP_CLIENT_SECRET"][:16]
    exchange_port = free_port()
    exchange_resource = f"http://127.0.0.1:{exchange_port}/mcp"
    provider = ServiceProcess(
        name="oidc-provider",
        module="oidc-provider",
        port=int(env["AUTH_SERVER_PORT"]),
        env=provider_env(topology, issuer, probe_secret, exchange_resource),
        workdir=workdir / "oidc-provider",
        command=[node, str(PROVIDER_DIR / "provider.mjs")],
    )
    try:
        provider.start(health_path="/.well-known/oauth-authorization-server")
        # The rest at once, as running_topology does: start-up is mostly importing, so the processes share
        # the cores (hence the longer deadline); each registers in topology.services when healthy.
        others = [each.name for each in SERVICES if each.name != "auth-server"]
        with ThreadPoolExecutor(max_workers=len(others)) as pool:
            starting = [pool.submit(topology.start, name, timeout=90.0) for name in others]
        for started in starting:
            started.result()  # the first start-up failure, after every start has ended
        with topology.extra(
            "crm-mcp-exchange", port=exchange_port, CRM_MCP_RESOURCE=exchange_resource, CRM_API_AUTH_MODE="exchange"
        ):
            yield Interop(
                topology=topology,
                provider=provider,
                issuer=issuer,
                probe_secret=probe_secret,
                exchange_crm_mcp_url=exchange_resource,
            )
    finally:
        for service in topology.services.values():
            service.stop()
        provider.stop()
