"""The whole topology as seven real processes on free loopback ports, with freshly generated secrets.

Used by the integration tests (tests/integration/conftest.py), `make bench` and `make soak`.
`Topology.extra(...)` starts one more process of a service beside it (another crm-mcp in another mode).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.types import CallToolResult, ListToolsResult
from oauth_tokens import ClientCredentialsAuth
from oauth_tokens.resource_discovery import TokenEndpointDiscovery
from oauth_tokens.token_endpoint import TokenEndpoint

from devkit.client_credential import crm_mcp_credential
from devkit.processes import ServiceProcess, free_port, start_service
from devkit.services import CALENDAR_AUTH_SERVER_CONFIG, SERVICES, service
from devkit.sessions import oauth_session

# Each service's data directory setting (CRM_MCP_DATA_DIR, …), for those that keep data.
DATA_DIR_VARIABLES = {s.name: s.data_dir_variable for s in SERVICES if s.data_dir_variable}
# The order `running_topology` starts them in: the auth servers, then everything else; each wave at once, as
# a service's start-up is mostly importing (seconds of CPU), so the processes overlap on every core.
AUTH_SERVERS = ("auth-server", "calendar-auth-server")
START_WAVES = (AUTH_SERVERS, tuple(s.name for s in SERVICES if s.name not in AUTH_SERVERS))


def service_overrides(name: str, env: dict[str, str]) -> dict[str, str]:
    """Settings a service gets under other names: the calendar's auth-server is auth_server, reconfigured."""
    if name != "calendar-auth-server":
        return {}
    return {
        "AUTH_ISSUER": env["CALENDAR_AUTH_ISSUER"],
        "AUTH_SERVER_PORT": env["CALENDAR_AUTH_SERVER_PORT"],
        "AUTH_SERVER_DATA_DIR": env["CALENDAR_AUTH_SERVER_DATA_DIR"],
        "AUTH_SERVER_CONFIG": str(CALENDAR_AUTH_SERVER_CONFIG),
        "AUTH_SERVER_METRICS_PORT": env["CALENDAR_AUTH_SERVER_METRICS_PORT"],
        "OTEL_SERVICE_NAME": "calendar-auth-server",
        "AUTH_SERVER_DPOP": env.get("CALENDAR_AUTH_SERVER_DPOP", "accept"),
        "AUTH_SERVER_DPOP_NONCE": "false",
        "AUTH_SERVER_STATE_KEYS": env["CALENDAR_AUTH_SERVER_STATE_KEYS"],
        "DATABASE_URL": env.get("CALENDAR_AUTH_SERVER_DATABASE_URL", ""),
    }


@dataclass
class Topology:
    """The running services, the settings they share and the secrets they were given."""

    env: dict[str, str]
    workdir: Path
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # Processes `extra` started beside the services, by their own names (kept after they stop, for their logs).
    extras: dict[str, ServiceProcess] = field(default_factory=dict)
    # Every tool result (and tool list) a user session received, as JSON: scanned for secrets at the end.
    received: list[str] = field(default_factory=list)

    @property
    def crm_mcp_url(self) -> str:
        return self.env["CRM_MCP_RESOURCE"]

    @property
    def crm_api_auth_mode(self) -> str:
        """How crm-mcp calls crm-api here: cascade (pattern 3) or exchange (pattern 3b)."""
        return self.env["CRM_API_AUTH_MODE"]

    @property
    def traces_dir(self) -> Path:
        return Path(self.env["TRACES_DIR"])

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.env[service(name).metrics_port_variable]}/metrics"

    @property
    def secrets(self) -> dict[str, str]:
        names: tuple[str, ...] = ("WEATHER_API_KEY", "DEMO_ALICE_PASSWORD", "DEMO_BOB_PASSWORD")
        names += ("CALENDAR_ALICE_PASSWORD", "CALENDAR_BOB_PASSWORD")
        names += ("CRM_MCP_VAULT_KEYS", "CRM_MCP_REQUEST_STATE_KEYS")
        names += ("AUTH_SERVER_STATE_KEYS", "CALENDAR_AUTH_SERVER_STATE_KEYS")
        # Client secrets exist only when a test picks a secret method (the default is private_key_jwt).
        names += tuple(name for name in ("CRM_MCP_CLIENT_SECRET", "CALENDAR_CLIENT_SECRET") if self.env.get(name))
        return {name: self.env[name] for name in names}

    def crm_mcp_credential(self, method_setting: str = "CRM_MCP_CLIENT_AUTH_METHOD") -> dict[str, Any]:
        """crm-mcp's client credential as it builds it: TokenEndpoint keyword arguments.

        `method_setting`: CRM_MCP_CLIENT_AUTH_METHOD (crm-mcp-agent, at AUTH_ISSUER) or
        CALENDAR_CLIENT_AUTH_METHOD (the calendar client, at CALENDAR_AUTH_ISSUER).
        """
        return crm_mcp_credential(self.env, calendar=method_setting == "CALENDAR_CLIENT_AUTH_METHOD")

    def password(self, user: str) -> str:
        return self.env[f"DEMO_{user.upper()}_PASSWORD"]

    def start(self, name: str, *, timeout: float = 30.0, **overrides: str) -> ServiceProcess:
        """Start service `name` on its port in this topology's settings (with `overrides`)."""
        port_variable = service(name).port_variable
        process = start_service(
            name,
            service(name).module,
            port_variable=port_variable,
            port=int(self.env[port_variable]),
            env={**self.env, **service_overrides(name, self.env), **overrides},
            workdir=self.workdir / name,
            timeout=timeout,
        )
        self.services[name] = process
        return process

    @contextmanager
    def extra(
        self,
        name: str,
        of: str = "crm-mcp",
        *,
        port: int | None = None,
        workdir: Path | None = None,
        health_path: str = "/health",
        timeout: float = 30.0,
        **overrides: str,
    ) -> Iterator[ServiceProcess]:
        """One more process `name` of service `of` beside the topology, on a free port (or `port`), with the
        topology's settings and `overrides` (its data directory too, as a replica's, unless overridden), once
        `health_path` answers (within `timeout` s); kept in `extras` (`logs()` reads its log with the
        services') and stopped on the way out."""
        running = self.extras.get(name) or self.services.get(name)
        if running is not None and running.process is not None and running.process.poll() is None:
            raise ValueError(f"{name} runs already in this topology: give the extra process another name")
        # The port setting its process reads: AUTH_SERVER_PORT for the calendar's auth-server too.
        port_variable = f"{service(of).module.upper()}_PORT"
        process = start_service(
            name,
            service(of).module,
            port_variable=port_variable,
            port=port,
            env={**self.env, **service_overrides(of, self.env), **overrides},
            workdir=workdir or self.workdir / name,
            health_path=health_path,
            timeout=timeout,
        )
        self.extras[name] = process
        try:
            yield process
        finally:
            process.stop()

    def logs(self) -> str:
        """Every service's log and every extra process's, as one text."""
        return "\n".join(process.logs() for process in [*self.services.values(), *self.extras.values()])

    def tickets_auth(self, scope: str = "tickets:read tickets:write") -> ClientCredentialsAuth:
        """crm-mcp's own client-credentials token source for tickets-mcp, as crm-mcp builds it."""
        return ClientCredentialsAuth(
            self.env.get("AUTH_TOKEN_URL", ""),
            self.env["CRM_MCP_CLIENT_ID"],
            **self.crm_mcp_credential(),
            scope=scope,
            resource=self.env["TICKETS_MCP_RESOURCE"],
            discover_token_url=self.token_endpoint_discovery().token_endpoint,
        )

    def token_endpoint_discovery(self) -> TokenEndpointDiscovery:
        """How crm-mcp finds the token endpoint when AUTH_TOKEN_URL is empty: from tickets-mcp (RFC 9728)."""
        return TokenEndpointDiscovery(self.env["TICKETS_MCP_URL"], (self.env["AUTH_ISSUER"],))

    async def client_credentials_token(self, resource: str, scope: str) -> str:
        """A token for crm-mcp's own machine client, straight from the token endpoint."""
        token_url = self.env.get("AUTH_TOKEN_URL") or await self.token_endpoint_discovery().token_endpoint()
        endpoint = TokenEndpoint(
            token_url, self.env["CRM_MCP_CLIENT_ID"], **self.crm_mcp_credential(), timeout_seconds=10
        )
        try:
            answer = await endpoint.request({"grant_type": "client_credentials", "resource": resource, "scope": scope})
        finally:
            await endpoint.aclose()
        return answer.access_token

    @asynccontextmanager
    async def user_session(
        self, user: str, *, scope: str | None = None, url: str | None = None, **client_options: Any
    ) -> AsyncIterator[Client]:
        """An MCP session with crm-mcp (or `url`), logged in as `user` through the real OAuth flow.

        `client_options` go to the SDK's `Client` (e.g. `elicitation_callback`, `mode="legacy"`)."""
        url = url or self.crm_mcp_url
        async with oauth_session(url, user, self.password(user), scope=scope, **client_options) as session:
            yield self._recording(session.client)

    def _recording(self, client: Client) -> Client:
        """`client`, with every tool result and tool list it receives also kept in `received`."""
        call_tool, list_tools = client.call_tool, client.list_tools

        async def recorded_call_tool(*args: Any, **kwargs: Any) -> CallToolResult:
            result = await call_tool(*args, **kwargs)
            self.received.append(result.model_dump_json())
            return result

        async def recorded_list_tools(*args: Any, **kwargs: Any) -> ListToolsResult:
            result = await list_tools(*args, **kwargs)
            self.received.append(result.model_dump_json())
            return result

        client.call_tool = recorded_call_tool  # type: ignore[method-assign]
        client.list_tools = recorded_list_tools  # type: ignore[method-assign]
        return client

    async def user_token(self, user: str, scope: str | None = None) -> str:
        """The access token `user` gets for crm-mcp through the real OAuth flow (to test it elsewhere),
        asking for `scope` (else every scope crm-mcp advertises)."""
        async with oauth_session(self.crm_mcp_url, user, self.password(user), scope=scope) as session:
            return session.access_token


def topology_env(crm_api_auth_mode: str = "cascade") -> dict[str, str]:
    ports = {s.port_variable: free_port() for s in SERVICES}
    ports.update({s.metrics_port_variable: free_port() for s in SERVICES})
    issuer = f"http://127.0.0.1:{ports['AUTH_SERVER_PORT']}"
    weather_key = secrets.token_urlsafe(32)
    calendar_issuer = f"http://127.0.0.1:{ports['CALENDAR_AUTH_SERVER_PORT']}"
    return {
        **{name: str(port) for name, port in ports.items()},
        "AUTH_ISSUER": issuer,
        "AUTH_TOKEN_URL": f"{issuer}/token",
        "CRM_MCP_RESOURCE": f"http://127.0.0.1:{ports['CRM_MCP_PORT']}/mcp",
        "TICKETS_MCP_RESOURCE": f"http://127.0.0.1:{ports['TICKETS_MCP_PORT']}/mcp",
        "CRM_API_AUDIENCE": f"http://127.0.0.1:{ports['CRM_API_PORT']}",
        "CRM_MCP_CLIENT_ID": "crm-mcp-agent",
        # As under `make up`: no client secret; crm-mcp signs assertions with its own key (RFC 7523).
        "CRM_MCP_CLIENT_AUTH_METHOD": "private_key_jwt",
        "CALENDAR_CLIENT_AUTH_METHOD": "private_key_jwt",
        "CRM_MCP_JWKS_URI": f"http://127.0.0.1:{ports['CRM_MCP_PORT']}/.well-known/jwks.json",
        "DEMO_ALICE_PASSWORD": secrets.token_urlsafe(16),
        "DEMO_BOB_PASSWORD": secrets.token_urlsafe(16),
        "WEATHER_API_KEY": weather_key,
        "WEATHER_API_KEYS": weather_key,
        "WEATHER_API_URL": f"http://127.0.0.1:{ports['WEATHER_API_PORT']}",
        "CRM_API_URL": f"http://127.0.0.1:{ports['CRM_API_PORT']}",
        "TICKETS_MCP_URL": f"http://127.0.0.1:{ports['TICKETS_MCP_PORT']}/mcp",
        "CRM_MCP_DOWNSTREAM_TIMEOUT_SECONDS": "5",
        # Read by the auth-server and crm-mcp alike, as under `make up`.
        "CRM_API_AUTH_MODE": crm_api_auth_mode,
        # Services fetch keys by RFC 8414 discovery from the issuer, as they do under `make up`.
        "AUTH_JWKS_URL": "",
        # Pattern 4: the calendar provider (its own authorization server) and crm-mcp's account there.
        "CALENDAR_AUTH_ISSUER": calendar_issuer,
        "CALENDAR_API_URL": f"http://127.0.0.1:{ports['CALENDAR_API_PORT']}",
        "CALENDAR_API_AUDIENCE": f"http://127.0.0.1:{ports['CALENDAR_API_PORT']}",
        "CALENDAR_CLIENT_ID": "crm-mcp",
        # Pattern 5: the calendar's authorization server trusts the auth-server's ID-JAGs.
        "CALENDAR_TRUSTED_IDP_ISSUER": issuer,
        "CALENDAR_TRUSTED_IDP_JWKS_URL": f"{issuer}/jwks",
        "CALENDAR_ALICE_PASSWORD": secrets.token_urlsafe(16),
        "CALENDAR_BOB_PASSWORD": secrets.token_urlsafe(16),
        "CRM_MCP_PUBLIC_URL": f"http://127.0.0.1:{ports['CRM_MCP_PORT']}",
        "CRM_MCP_VAULT_KEYS": f"k1:{secrets.token_urlsafe(32)}",
        "CRM_MCP_REQUEST_STATE_KEYS": secrets.token_urlsafe(32),
        "AUTH_SERVER_STATE_KEYS": secrets.token_urlsafe(32),
        "CALENDAR_AUTH_SERVER_STATE_KEYS": secrets.token_urlsafe(32),
    }


@contextmanager
def running_topology(
    workdir: Path,
    *,
    crm_api_auth_mode: str = "cascade",
    overrides: Mapping[str, str] | None = None,
    traced: bool = False,
) -> Iterator[Topology]:
    """Start all seven services (auth servers first, see START_WAVES) under `workdir`; stop every one afterwards.

    `overrides` replaces or adds settings in every service's environment. `traced`: every service writes
    its spans to `workdir`/traces/<service>.jsonl (`Topology.traces_dir`).
    """
    topology = Topology(env={**topology_env(crm_api_auth_mode), **(overrides or {})}, workdir=workdir)
    if traced:
        topology.env["TRACES_DIR"] = str(workdir / "traces")
    for name, variable in DATA_DIR_VARIABLES.items():
        topology.env[variable] = str(workdir / name / "data")
    try:
        for wave in START_WAVES:
            with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                # A longer deadline than one service's: the wave's processes share the cores while they start.
                list(pool.map(lambda name: topology.start(name, timeout=90.0), wave))
        yield topology
    finally:  # every service at once too: each stop waits for its process to end
        services = list(topology.services.values())
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            list(pool.map(ServiceProcess.stop, services))
