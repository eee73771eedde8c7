"""`make up REPLICAS=N` / `make down` for the scaled topology as local processes (plan: devkit.scaled_layout).

`up` starts PostgreSQL and Redis (Debian's packages: installed with apt-get when missing and we are root,
else it prints the command), creates one database per service, has honcho run every replica from a
generated Procfile, then starts HAProxy in front of them on the documented ports and prints the banner.
Its servers' process groups are kept in .run/scaled/state.json; `down` stops honcho (every replica),
HAProxy, Redis and PostgreSQL, then deletes the data (PostgreSQL's cluster too) unless KEEP_DATA=1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devkit.local_servers import LocalServer, MissingServer, start_haproxy, start_postgres, start_redis
from devkit.scaled_layout import (
    DATABASES,
    LIVE_PATH,
    LIVENESS_ONLY,
    READY_PATH,
    Plan,
    create_databases,
    haproxy_config,
    plan,
    replica_counts,
)
from devkit.services import CALENDAR_AUTH_SERVER_CONFIG, ROOT

from scripts.scaled_topology import healthy, procfile
from scripts.topology import (
    Workspace,
    active_services,
    delete_data,
    init_env,
    load_env,
    port_in_use,
    running_pid,
    stop,
)
from scripts.topology import (
    banner as single_banner,
)

HEALTH_TIMEOUT_SECONDS = 120.0
DEFAULT_PORTS = {"POSTGRES_PORT": 55432, "REDIS_PORT": 56379}
SERVER_DATA = ("data/postgresql", "data/redis")


def _run_dir(workspace: Workspace) -> Path:
    return workspace.directory / ".run" / "scaled"


def _state_file(workspace: Workspace) -> Path:
    return _run_dir(workspace) / "state.json"


def _read_state(workspace: Workspace) -> dict[str, object]:
    path = _state_file(workspace)
    return json.loads(path.read_text()) if path.exists() else {}


def _write_state(workspace: Workspace, state: dict[str, object]) -> None:
    _state_file(workspace).write_text(json.dumps(state, indent=2))


def _server_port(env: dict[str, str], variable: str) -> int:
    return int(env.get(variable) or os.environ.get(variable) or DEFAULT_PORTS[variable])


def _is_root() -> bool:
    return os.geteuid() == 0


def _busy_ports(layout: Plan, extra: list[int]) -> list[int]:
    ports = [*list(layout.public_ports.values()), layout.stats_port, *extra]
    for replica in layout.all_replicas():
        ports += [replica.port] + ([replica.metrics_port] if replica.metrics_port else [])
    return [port for port in ports if port_in_use(port)]


def _stop_group(pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


def _stop_servers(workspace: Workspace) -> None:
    state = _read_state(workspace)
    servers = state.get("servers", {})
    assert isinstance(servers, dict)
    # HAProxy first (no more traffic), PostgreSQL last with a fast shutdown (SIGINT: ends open sessions).
    for name in ("haproxy", "redis", "postgresql"):
        if name in servers:
            _stop_group(int(servers[name]), signal.SIGINT if name == "postgresql" else signal.SIGTERM)
    _state_file(workspace).unlink(missing_ok=True)


def _wait_replicas(layout: Plan, honcho: subprocess.Popen[bytes]) -> list[str]:
    pending = layout.all_replicas()
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while pending and time.monotonic() < deadline and honcho.poll() is None:
        for replica in list(pending):
            if healthy(replica.url + LIVE_PATH):
                print(f"  ✓ {replica.name} healthy on 127.0.0.1:{replica.port}")
                pending.remove(replica)
        time.sleep(0.3)
    return [replica.name for replica in pending]


def _wait_balanced(layout: Plan) -> list[str]:
    """The services that do not answer /health through HAProxy by the deadline."""
    pending = dict(layout.public_ports)
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for name, port in list(pending.items()):
            if healthy(f"http://127.0.0.1:{port}{LIVE_PATH}"):
                pending.pop(name)
        time.sleep(0.3)
    return list(pending)


def _fail(workspace: Workspace, message: str) -> int:
    print(message)
    print("\n".join(workspace.log_file.read_text(errors="replace").splitlines()[-40:]))
    stop(workspace)
    _stop_servers(workspace)
    return 1


def up() -> int:
    workspace = Workspace.from_environment()
    init_env(workspace)
    if (pid := running_pid(workspace)) is not None:
        print(f"Already running (honcho pid {pid}). `make down` stops it.")
        return banner()
    env = load_env(workspace)
    replicas = int(os.environ.get("REPLICAS") or 3)
    services = active_services(env)
    layout = plan(env, replica_counts(replicas, services), services=services)
    server_ports = {variable: _server_port(env, variable) for variable in DEFAULT_PORTS}
    if busy := _busy_ports(layout, list(server_ports.values())):
        print(f"Cannot start: ports in use already: {', '.join(map(str, busy))}. Stop what holds them.")
        return 1
    run_dir = _run_dir(workspace)
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"Starting PostgreSQL and Redis (data: {', '.join(SERVER_DATA)})…")
    started: dict[str, int] = {}
    try:
        postgres = start_postgres(
            workspace.directory / SERVER_DATA[0], server_ports["POSTGRES_PORT"], install=_is_root()
        )
        started["postgresql"] = _pid(postgres)
        redis = start_redis(workspace.directory / SERVER_DATA[1], server_ports["REDIS_PORT"], install=_is_root())
        started["redis"] = _pid(redis)
    except MissingServer as missing:
        _write_state(workspace, {"servers": started})
        _stop_servers(workspace)
        print(f"Cannot start the scaled topology: {missing}")
        return 1
    state: dict[str, object] = {"servers": started, "replicas": replicas, "ports": server_ports}
    _write_state(workspace, state)
    database_urls = create_databases(postgres.url, [service.name for service in services])
    (run_dir / "Procfile").write_text(procfile(layout))
    (run_dir / "haproxy.cfg").write_text(haproxy_config(layout))
    try:  # HAProxy first: it holds the public ports from now on (its replicas are DOWN until they start)
        started["haproxy"] = _pid(start_haproxy(run_dir / "haproxy.cfg", layout.stats_port, install=_is_root()))
    except (MissingServer, RuntimeError) as failed:
        _stop_servers(workspace)
        print(f"Cannot start HAProxy: {failed}")
        return 1
    _write_state(workspace, state)
    with workspace.log_file.open("ab") as log:
        honcho = subprocess.Popen(  # noqa: S603 - our interpreter, our generated Procfile
            [sys.executable, "-m", "honcho", "start", "--no-colour", "-f", str(run_dir / "Procfile"), "-e", os.devnull],
            env={
                "CALENDAR_AUTH_SERVER_CONFIG": str(CALENDAR_AUTH_SERVER_CONFIG),
                **os.environ,
                **env,
                **database_urls,
                "REDIS_URL": redis.url,
                "PYTHONPATH": str(ROOT),  # the later replicas' `python -m scripts.scaled_topology wait-healthy`
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            cwd=workspace.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    workspace.pid_file.write_text(str(honcho.pid))
    print(f"Starting {len(layout.all_replicas())} replicas as local processes (log: .run/topology.log)…")
    try:
        if unhealthy := _wait_replicas(layout, honcho):
            return _fail(workspace, f"Not healthy: {', '.join(unhealthy)}. Last log lines:\n")
        if unbalanced := _wait_balanced(layout):
            return _fail(workspace, f"Not answering through HAProxy: {', '.join(unbalanced)}. Last log lines:\n")
    except KeyboardInterrupt:
        stop(workspace)
        _stop_servers(workspace)
        return 130
    return banner()


def _pid(server: LocalServer) -> int:
    assert server.process is not None
    return server.process.pid


def down() -> int:
    """Stop every replica, HAProxy, Redis and PostgreSQL; delete their data unless KEEP_DATA=1."""
    workspace = Workspace.from_environment()
    stop(workspace)
    _stop_servers(workspace)
    if os.environ.get("KEEP_DATA") == "1":
        print("Kept the data (KEEP_DATA=1): keys, PostgreSQL's databases are reused by the next make up REPLICAS=N.")
        return 0
    deleted = []
    for relative in SERVER_DATA:
        if (workspace.directory / relative).is_dir():
            shutil.rmtree(workspace.directory / relative)
            deleted.append(relative)
    deleted += delete_data(workspace)
    shutil.rmtree(_run_dir(workspace), ignore_errors=True)
    if deleted:
        print(f"Deleted the data: {', '.join(deleted)} (make down KEEP_DATA=1 keeps it).")
    return 0


def banner() -> int:
    """The single-instance banner, then the replicas, the load balancer and the shared state."""
    workspace = Workspace.from_environment()
    single_banner(workspace)
    state = _read_state(workspace)
    env = load_env(workspace)
    replicas = int(str(state.get("replicas") or os.environ.get("REPLICAS") or 3))
    services = active_services(env)
    layout = plan(env, replica_counts(replicas, services), services=services)
    ports = state.get("ports") or {}
    assert isinstance(ports, dict)
    print(f"\nScaled (REPLICAS={replicas}): HAProxy round-robins each port above over its replicas, no stickiness;")
    print("the X-Served-By response header names the replica that answered.\n")
    print(f"  {'load balancer':<20} HAProxy, stats at http://localhost:{layout.stats_port}/")
    for name, group in layout.replicas.items():
        where = ", ".join(f"{replica.name} :{replica.port}" for replica in group)
        print(f"  {name:<20} {where}  (checked: {LIVE_PATH if name in LIVENESS_ONLY else READY_PATH})")
    databases = ", ".join(DATABASES[service.name] for service in services if service.name in DATABASES)
    print(f"  {'PostgreSQL':<20} 127.0.0.1:{ports.get('POSTGRES_PORT', '?')}: databases {databases} (DATABASE_URL)")
    print(f"  {'Redis':<20} 127.0.0.1:{ports.get('REDIS_PORT', '?')}: shared by all (REDIS_URL)")
    print("\n  make down    stops all of it and deletes its data (KEEP_DATA=1 keeps it); see docs/scale-out.md")
    return 0
