"""The scaled topology's plan: which replicas run where, what each is given, and HAProxy's configuration.

`make up REPLICAS=N` (scripts.scaled_processes) and the scale-out tests and bench (devkit.scaled) both
build on this module, so the two run the same layout:

- every service keeps its documented public port, now HAProxy's frontend (round robin, no stickiness;
  `X-Served-By` names the replica that answered), so AUTH_ISSUER and every resource URL stay valid;
- its replicas listen on internal ports; HAProxy checks each one's readiness (/health/ready, or /health
  for a service that has none) every second and takes a replica out after two failed checks;
- each service with durable state gets its own PostgreSQL database (DATABASE_URL), all share one
  Redis (REDIS_URL) with keys namespaced per service (REDIS_KEY_PREFIX);
- N crm-mcp replicas, two of every other service (one each with REPLICAS=1), one calendar-api (the
  third party's stand-in keeps its meetings in memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # no stubs; used only to CREATE DATABASE

from devkit.services import SERVICES, Service

# Services with durable state: their own database each (the calendar's auth-server too).
DATABASES = {service.name: service.database for service in SERVICES if service.database}
# The calendar's authorization server is auth_server with the calendar's settings under auth_server's names.
CALENDAR_AUTH_SERVER_SETTINGS = {
    "AUTH_ISSUER": "$CALENDAR_AUTH_ISSUER",
    "AUTH_SERVER_DATA_DIR": "$CALENDAR_AUTH_SERVER_DATA_DIR",
    "AUTH_SERVER_CONFIG": "$CALENDAR_AUTH_SERVER_CONFIG",
    "AUTH_SERVER_STATE_KEYS": "$CALENDAR_AUTH_SERVER_STATE_KEYS",
    "AUTH_SERVER_DPOP": "${CALENDAR_AUTH_SERVER_DPOP:-accept}",
    "AUTH_SERVER_DPOP_NONCE": "false",
    "OTEL_SERVICE_NAME": "calendar-auth-server",
}
READY_PATH = "/health/ready"
LIVE_PATH = "/health"
# Services with no readiness endpoint (nothing shared to wait for): HAProxy checks their liveness.
LIVENESS_ONLY = frozenset(service.name for service in SERVICES if service.liveness_only)
STATS_PORT_VARIABLE = "HAPROXY_STATS_PORT"
DEFAULT_STATS_PORT = 8404
PORT_OFFSET = 10000  # make up: replica i of public port P listens on P + PORT_OFFSET + (i - 1) * PORT_STRIDE
PORT_STRIDE = 100


def database_url_variable(service: str) -> str:
    """The variable holding `service`'s DATABASE_URL in the scaled topology's environment."""
    return "SCALED_DATABASE_URL_" + service.upper().replace("-", "_")


# Services that stay single: calendar-api stands in for a third party's SaaS and keeps its meetings in
# process memory (a real SaaS scales its own storage); two of it would each see half of the meetings.
SINGLE_INSTANCE = frozenset(service.name for service in SERVICES if service.single_instance)


def replica_counts(replicas: int, services: tuple[Service, ...] = SERVICES) -> dict[str, int]:
    """`replicas` crm-mcp replicas, two of every other service (one each when `replicas` is 1), but
    one calendar-api (SINGLE_INSTANCE)."""
    if replicas < 1:
        raise ValueError("REPLICAS must be 1 or more")
    return {
        service.name: replicas
        if service.name == "crm-mcp"
        else 1
        if service.name in SINGLE_INSTANCE
        else min(2, replicas)
        for service in services
    }


@dataclass(frozen=True)
class Replica:
    """One process of a service: its name (`crm-mcp-2`), internal port and /metrics port."""

    service: Service
    index: int
    port: int
    metrics_port: int | None

    @property
    def name(self) -> str:
        return f"{self.service.name}-{self.index}"

    @property
    def module(self) -> str:
        return self.service.module

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        """Its own settings over the shared ones; a `$NAME` value is the shared setting NAME (see `resolve`)."""
        calendar = self.service.name == "calendar-auth-server"
        port_variable = "AUTH_SERVER_PORT" if calendar else self.service.port_variable
        metrics_variable = port_variable.removesuffix("_PORT") + "_METRICS_PORT"
        settings = {port_variable: str(self.port)}
        if self.metrics_port is not None:
            settings[metrics_variable] = str(self.metrics_port)
        if calendar:
            settings.update(CALENDAR_AUTH_SERVER_SETTINGS)
        if self.service.name in DATABASES:
            settings["DATABASE_URL"] = "$" + database_url_variable(self.service.name)
        settings["REDIS_KEY_PREFIX"] = self.service.name
        return settings


def resolve(settings: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """`settings` with each `$NAME` replaced by env's NAME (empty when unset) and each `${NAME:-default}` by
    NAME or, when unset or empty, `default`, as the Procfile's shell does."""

    def value_of(value: str) -> str:
        if value.startswith("${") and value.endswith("}") and ":-" in value:
            name, _, default = value[2:-1].partition(":-")
            return env.get(name) or default
        return env.get(value[1:], "") if value.startswith("$") else value

    return {key: value_of(value) for key, value in settings.items()}


def default_port(public: int, index: int) -> int:
    """Replica `index` (1, 2, …) of public port P: P + 10000 + 100 * (index - 1), below Linux's ephemeral
    range (32768 up) for the documented ports, so no outgoing connection holds one while replicas start."""
    port = public + PORT_OFFSET + (index - 1) * PORT_STRIDE
    if port > 65535:
        raise ValueError(f"replica {index} of port {public} would be {port}: use public ports below 55000")
    return port


@dataclass
class Plan:
    """Every replica of every service, and the ports HAProxy listens on."""

    public_ports: dict[str, int]
    replicas: dict[str, list[Replica]]
    stats_port: int

    def all_replicas(self) -> list[Replica]:
        return [replica for group in self.replicas.values() for replica in group]

    def replica(self, name: str) -> Replica:
        return next(replica for replica in self.all_replicas() if replica.name == name)


def plan(
    env: Mapping[str, str],
    counts: Mapping[str, int],
    *,
    services: tuple[Service, ...] = SERVICES,
    allocate: Callable[[int, int], int] = default_port,
) -> Plan:
    """The layout for `counts` replicas per service; `allocate(public_port, index)` picks internal ports."""
    public_ports: dict[str, int] = {}
    replicas: dict[str, list[Replica]] = {}
    for service in services:
        public = int(env.get(service.port_variable) or service.default_port)
        metrics = env.get(service.port_variable.removesuffix("_PORT") + "_METRICS_PORT")
        public_ports[service.name] = public
        replicas[service.name] = [
            Replica(service, index, allocate(public, index), allocate(int(metrics), index) if metrics else None)
            for index in range(1, counts.get(service.name, 1) + 1)
        ]
    stats_port = int(env.get(STATS_PORT_VARIABLE) or DEFAULT_STATS_PORT)
    return Plan(public_ports, replicas, stats_port)


def haproxy_config(topology_plan: Plan) -> str:
    """Round robin without stickiness, fast failure detection (1 s checks, out after 2), retry elsewhere."""
    lines = [
        "# Generated by devkit/scaled_layout.py; do not edit.",
        "global",
        "    maxconn 4096",
        "    log stdout format raw local0",  # its log file: errors, and every replica going DOWN or UP
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlog-normal",
        "    option log-health-checks",
        "    timeout connect 1s",
        "    timeout client 120s",
        "    timeout server 120s",
        "    timeout check 3s",  # a slow answer on a busy machine is not a dead replica: refused connections are
        "    retries 2",
        "    option redispatch 1",
        "    default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 1",
        # No replica ready (all out, e.g. their database is down): 503 with Retry-After, as the services answer.
        "    http-error status 503 content-type application/json hdr Retry-After 1 string"
        + ' "{\\"error\\":\\"temporarily_unavailable\\",\\"error_description\\":\\"no replica ready, retry later\\"}"',
        "listen stats",
        f"    bind 127.0.0.1:{topology_plan.stats_port}",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 2s",
    ]
    for name, group in topology_plan.replicas.items():
        path = LIVE_PATH if name in LIVENESS_ONLY else READY_PATH
        host = f"localhost:{topology_plan.public_ports[name]}"
        lines += [
            f"frontend {name}",
            f"    bind 127.0.0.1:{topology_plan.public_ports[name]}",
            f"    default_backend {name}",
            f"backend {name}",
            "    balance roundrobin",
            "    option httpchk",
            # The Host clients send (the services refuse others: DNS rebinding), so the check passes that check.
            f"    http-check send meth GET uri {path} ver HTTP/1.1 hdr Host {host}",
            "    http-check expect status 200",
            "    http-response set-header X-Served-By %[srv_name]",
        ]
        lines += [f"    server {replica.name} 127.0.0.1:{replica.port} check" for replica in group]
    return "\n".join(lines) + "\n"


async def _create_databases(server_url: str, names: list[str]) -> None:
    connection = await asyncpg.connect(server_url, timeout=10)
    try:
        existing = {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:  # names come from DATABASES, never from input
                await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def create_databases(server_url: str, services: list[str]) -> dict[str, str]:
    """One database per service in the PostgreSQL at `server_url`; {database_url_variable: its URL}."""
    names = [DATABASES[service] for service in services if service in DATABASES]
    with ThreadPoolExecutor(max_workers=1) as thread:  # its own event loop, also when called from one
        thread.submit(asyncio.run, _create_databases(server_url, names)).result()
    base = server_url.rsplit("/", 1)[0]
    return {database_url_variable(s): f"{base}/{DATABASES[s]}" for s in services if s in DATABASES}
