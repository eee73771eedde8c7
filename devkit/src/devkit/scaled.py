"""The scaled topology for tests and the bench: real PostgreSQL, Redis and HAProxy, replicas of every service.

The layout is devkit.scaled_layout's, the one `make up REPLICAS=N` runs: the services' public URLs are
HAProxy's frontends (round robin, no stickiness, `X-Served-By` names the replica), each replica gets its
own internal port, every service with durable state its own database, all of them one Redis. Replicas
are started here as `ServiceProcess`es (not honcho) so a test can SIGKILL one, restart a service's
replicas with other settings, or stop PostgreSQL or Redis for a while.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from devkit.local_servers import LocalServer, start_haproxy, start_postgres, start_redis
from devkit.processes import ServiceProcess, free_port
from devkit.scaled_layout import (
    LIVE_PATH,
    Plan,
    Replica,
    create_databases,
    haproxy_config,
    plan,
    replica_counts,
    resolve,
)
from devkit.services import CALENDAR_AUTH_SERVER_CONFIG, SERVICES
from devkit.topology import DATA_DIR_VARIABLES, Topology, topology_env

SERVED_BY = "x-served-by"
# Internal ports come from below Linux's ephemeral range (32768-60999), which free_port() and every
# outgoing connection draw from: a port chosen there for a replica that starts a minute later can be
# taken by then (seen: "address already in use"). Below it only another listener can take one.
QUIET_PORTS = (20000, 32767)


def quiet_port() -> int:
    """A port below the ephemeral range that nothing listens on right now."""
    for _ in range(200):
        port = random.randint(*QUIET_PORTS)  # noqa: S311 - a port number, not a secret
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {QUIET_PORTS}")


@dataclass
class ScaledTopology(Topology):
    """A Topology whose public URLs are HAProxy's; `replicas` are the processes behind it."""

    layout: Plan | None = None
    replicas: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    servers: dict[str, LocalServer] = field(default_factory=dict)

    @property
    def postgres(self) -> LocalServer:
        return self.servers["postgresql"]

    @property
    def redis(self) -> LocalServer:
        return self.servers["redis"]

    def replica_env(self, replica: Replica, overrides: Mapping[str, str]) -> dict[str, str]:
        env = {**self.env, **overrides}
        return {**env, **resolve(replica.settings(), env), **overrides}

    def process(self, replica: Replica, overrides: Mapping[str, str] = {}) -> ServiceProcess:
        port_variable = next(key for key in replica.settings() if key.endswith("_PORT") and "METRICS" not in key)
        env = {**self.replica_env(replica, overrides), port_variable.removesuffix("_PORT") + "_HOST": "127.0.0.1"}
        return ServiceProcess(replica.name, replica.module, replica.port, env, self.workdir / replica.name)

    def start_replicas(self, replicas: list[Replica], overrides: Mapping[str, str] = {}) -> None:
        """Start `replicas` at once and wait until each answers /health."""
        processes = [self.process(replica, overrides) for replica in replicas]
        with ThreadPoolExecutor(max_workers=len(processes)) as pool:
            list(pool.map(lambda process: process.start(timeout=90.0), processes))
        for replica, process in zip(replicas, processes, strict=True):
            group = self.replicas.setdefault(replica.service.name, [])
            group[:] = [p for p in group if p.name != process.name] + [process]
            group.sort(key=lambda p: p.name)
            self.services[replica.service.name] = group[0]

    def restart(self, services: list[str], **overrides: str) -> None:
        """Stop every replica of `services`, start them again with `overrides`; wait until HAProxy sees them UP."""
        assert self.layout is not None
        for service in services:
            for process in self.replicas[service]:
                process.stop()
        self.start_replicas([replica for service in services for replica in self.layout.replicas[service]], overrides)
        self.wait_all_up()

    def restart_replicas(self, *names: str) -> None:
        """Start replicas `names` again (after a kill) with their usual settings; wait until HAProxy sees them UP."""
        assert self.layout is not None
        self.start_replicas([self.layout.replica(name) for name in names])
        self.wait_all_up()

    def kill(self, name: str) -> None:
        """SIGKILL replica `name` (its whole process group), as a crash would."""
        process = self.replica_process(name)
        assert process.process is not None
        os.killpg(process.process.pid, signal.SIGKILL)
        process.process.wait(timeout=10)

    def replica_process(self, name: str) -> ServiceProcess:
        return next(p for group in self.replicas.values() for p in group if p.name == name)

    def stop_replicas(self) -> None:
        for group in self.replicas.values():
            for process in group:
                process.stop()

    def logs(self) -> str:
        return "\n".join(p.logs() for group in self.replicas.values() for p in group)

    def backend_status(self) -> dict[str, str]:
        """HAProxy's view of every replica: {name: UP | DOWN | ...}, from its stats CSV."""
        assert self.layout is not None
        csv = httpx2.get(f"http://127.0.0.1:{self.layout.stats_port}/;csv", timeout=5).text
        rows = [line.split(",") for line in csv.splitlines() if line and not line.startswith("#")]
        return {row[1]: row[17] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}

    def wait_all_up(self, service: str | None = None, timeout: float = 30.0) -> None:
        """Until HAProxy marks every replica (of `service`) UP."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.backend_status()
            names = [p.name for name, g in self.replicas.items() if service in (None, name) for p in g]
            if all(status.get(name, "").startswith("UP") for name in names):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all UP in HAProxy after {timeout}s: {status}")
            time.sleep(0.2)

    def metric(self, service: str, name: str, **labels: str) -> float:
        """The sum over `service`'s replicas of every /metrics sample `name` with these labels."""
        assert self.layout is not None
        total = 0.0
        for replica in self.layout.replicas[service]:
            text = httpx2.get(f"http://127.0.0.1:{replica.metrics_port}/metrics", timeout=5).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                        total += sample.value
        return total

    def token_requests(self, grant: str) -> int:
        """Token requests the auth-server replicas answered for `grant` (any outcome), summed."""
        return int(self.metric("auth-server", "oauth_token_requests_total", side="server", grant=grant))


def scaled_env(crm_api_auth_mode: str) -> dict[str, str]:
    """topology_env's settings plus what replicas must share: state keys (from settings, never per process)."""
    env = topology_env(crm_api_auth_mode)
    env["AUTH_SERVER_STATE_KEYS"] = secrets.token_urlsafe(32)
    env["CALENDAR_AUTH_SERVER_STATE_KEYS"] = secrets.token_urlsafe(32)
    env["CALENDAR_AUTH_SERVER_CONFIG"] = str(CALENDAR_AUTH_SERVER_CONFIG)
    env["HAPROXY_STATS_PORT"] = str(quiet_port())
    # A second weather-api key for tests that count against its limit without crm-mcp's calls counting too.
    env["WEATHER_API_SECOND_KEY"] = secrets.token_urlsafe(32)
    env["WEATHER_API_KEYS"] += "," + env["WEATHER_API_SECOND_KEY"]
    return env


@dataclass(frozen=True)
class Servers:
    """How the topology gets its PostgreSQL, Redis and HAProxy: `plain_servers` outside pytest; the tests'
    (tests/support/servers.py) skip or fail when one is missing."""

    postgres: Callable[[], AbstractContextManager[LocalServer]]
    redis: Callable[[], AbstractContextManager[LocalServer]]
    haproxy: Callable[[Path, int], AbstractContextManager[LocalServer]]


@contextmanager
def plain_server(start: Callable[[], LocalServer]) -> Iterator[LocalServer]:
    """A server outside pytest: MissingServer propagates (the caller says what to install)."""
    server = start()
    try:
        yield server
    finally:
        server.stop()


def plain_servers(scratch: Path) -> Servers:
    """Servers for `make bench` (no pytest): under `scratch`, on free ports, nothing installed."""
    scratch.mkdir(parents=True, exist_ok=True)
    scratch.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    return Servers(
        postgres=lambda: plain_server(lambda: start_postgres(scratch / "postgresql", free_port(), durable=False)),
        redis=lambda: plain_server(lambda: start_redis(scratch / "redis", free_port())),
        haproxy=lambda config, port: plain_server(lambda: start_haproxy(config, port)),
    )


@contextmanager
def running_scaled_topology(
    workdir: Path,
    *,
    replicas: int = 3,
    crm_api_auth_mode: str = "cascade",
    overrides: Mapping[str, str] | None = None,
    servers: Servers,
) -> Iterator[ScaledTopology]:
    """PostgreSQL, Redis, every service's replicas (first ones first: they create shared keys) and HAProxy."""
    with ExitStack() as stack:
        postgres = stack.enter_context(servers.postgres())
        redis = stack.enter_context(servers.redis())
        env = {**scaled_env(crm_api_auth_mode), **(overrides or {})}
        for name, variable in DATA_DIR_VARIABLES.items():
            env[variable] = str(workdir / name / "data")
        env.update(create_databases(postgres.url, [service.name for service in SERVICES]))
        env["REDIS_URL"] = redis.url
        layout = plan(env, replica_counts(replicas), allocate=lambda _public, _index: quiet_port())
        topology = ScaledTopology(env=env, workdir=workdir, layout=layout)
        topology.servers.update(postgresql=postgres, redis=redis)
        stack.callback(topology.stop_replicas)
        config = workdir / "haproxy.cfg"
        config.write_text(haproxy_config(layout))
        # HAProxy first, so it holds the public ports while the replicas start (DOWN until they answer).
        topology.servers["haproxy"] = stack.enter_context(servers.haproxy(config, layout.stats_port))
        topology.start_replicas([group[0] for group in layout.replicas.values()])
        topology.start_replicas([replica for group in layout.replicas.values() for replica in group[1:]])
        topology.wait_all_up(timeout=60)
        for port in layout.public_ports.values():
            assert httpx2.get(f"http://127.0.0.1:{port}{LIVE_PATH}", timeout=5).status_code == 200
        yield topology
