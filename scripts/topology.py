"""`make up` / `make down` for local processes: honcho runs the Procfile, this waits for health and reports.

Usage: python -m scripts.topology {init-env|up|down|banner}

Process management is honcho's (it starts, prefixes and stops the seven services); this script only
puts honcho in the background, waits until every service's /health answers, prints where to go next,
and on `down` (or Ctrl-C while waiting) stops honcho's whole process group so nothing is left behind.
`down` then deletes the services' data directories (signing keys, databases), their traces and the
log, unless KEEP_DATA=1. Each `up` starts a fresh .run/topology.log (the previous one is kept as
topology.log.1). What `up` says when it cannot do what was asked is scripts.topology_report's.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2
from devkit.services import CALENDAR_AUTH_SERVER_CONFIG, ROOT, SERVICES, Service
from dotenv import dotenv_values

from scripts.dpop_switch import apply_dpop_switch, dpop_problem
from scripts.topology_report import failure_report, save_settings, settings_mismatch

PROCFILE = ROOT / "Procfile"
ENV_EXAMPLE = ROOT / ".env.example"
HEALTH_TIMEOUT_SECONDS = 60.0
# The services' data directories (.env can move them), relative to the workspace.
DATA_DIRS = {service.data_dir_variable: service.default_data_dir for service in SERVICES if service.data_dir_variable}


@dataclass(frozen=True)
class Workspace:
    """Where a topology keeps its .env, its runtime state (.run/) and its data: the repository by default.

    TOPOLOGY_DIR points it elsewhere, which is how the tests run `up` and `down` on free ports.
    """

    directory: Path

    @classmethod
    def from_environment(cls) -> Workspace:
        return cls(Path(os.environ.get("TOPOLOGY_DIR") or ROOT))

    @property
    def env_file(self) -> Path:
        return self.directory / ".env"

    @property
    def pid_file(self) -> Path:
        return self.directory / ".run" / "topology.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / ".run" / "topology.log"

    @property
    def settings_file(self) -> Path:
        """The settings the running topology started with (scripts.topology_report)."""
        return self.directory / ".run" / "topology.settings.json"


CRM_API_AUTH_MODES = {
    "cascade": "pattern 3: the user's token, forwarded",
    "exchange": "pattern 3b: the user's token exchanged for one for crm-api alone, RFC 8693",
}


def load_env(workspace: Workspace | None = None) -> dict[str, str]:
    """The settings `make up` runs with: .env, overridden by the process environment (`make up X=y`).

    A setting .env.example documents can be given that way even if an older .env lacks it.
    """
    workspace = workspace or Workspace.from_environment()
    values = {k: v for k, v in dotenv_values(workspace.env_file).items() if v is not None}
    known = values.keys() | dotenv_values(ENV_EXAMPLE).keys()
    given = {k: v for k, v in os.environ.items() if k in known and k != "DPOP"}
    return apply_dpop_switch({**values, **{k: v for k, v in os.environ.items() if k in known}}, given)


def active_services(env: dict[str, str]) -> tuple[Service, ...]:
    """The services this configuration runs: auth-server only with the `local-auth` profile (the default)."""
    profiles = env.get("COMPOSE_PROFILES", "local-auth").split(",")
    local_auth = "local-auth" in (profile.strip() for profile in profiles)
    return tuple(service for service in SERVICES if local_auth or service.name != "auth-server")


def base_url(service: Service, env: dict[str, str]) -> str:
    return f"http://localhost:{env.get(service.port_variable, service.default_port)}"


def init_env(workspace: Workspace) -> int:
    """Create .env from .env.example, replacing `<generated>` with fresh random secrets."""
    if workspace.env_file.exists():
        return 0
    generated: dict[str, str] = {}
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and value.endswith("<generated>"):  # a prefix stays: `k1:<generated>` is a key id and a key
            generated[name] = value.removesuffix("<generated>") + secrets.token_urlsafe(32)
            line = f"{name}={generated[name]}"
        elif sep and (same := re.fullmatch(r"<same as (\w+)>", value)):
            line = f"{name}={generated[same.group(1)]}"
        lines.append(line)
    # Created 0600 from the start: the secrets are never readable by others, not even briefly.
    with os.fdopen(os.open(workspace.env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as env_file:
        env_file.write("\n".join(lines) + "\n")
    print(f"Created .env with fresh local secrets ({', '.join(generated)}).")
    return 0


def running_pid(workspace: Workspace) -> int | None:
    """The pid of the honcho started by `up`, if it is still alive."""
    try:
        pid = int(workspace.pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_healthy(env: dict[str, str], honcho: subprocess.Popen[bytes]) -> list[str]:
    """Poll every /health until all answer 200; returns the services still unhealthy at the deadline."""
    pending = list(active_services(env))
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while pending and time.monotonic() < deadline and honcho.poll() is None:
        for service in list(pending):
            try:
                if httpx2.get(base_url(service, env) + "/health", timeout=1.0).status_code == 200:
                    print(f"  ✓ {service.name} healthy")
                    pending.remove(service)
            except httpx2.TransportError:
                pass
        time.sleep(0.3)
    return [service.name for service in pending]


def up(workspace: Workspace) -> int:
    init_env(workspace)
    env = load_env(workspace)
    if (pid := running_pid(workspace)) is not None:
        if (mismatch := settings_mismatch(workspace.settings_file, pid, env, _dotenv(workspace))) is not None:
            print(mismatch)
            return 1
        print(f"Already running (honcho pid {pid}). `make down` stops it.")
        return banner(workspace)
    if (problem := dpop_problem(env)) is not None:
        print(problem)
        return 1
    services = active_services(env)
    busy = [f"{s.name} port {p}" for s in services if port_in_use(p := int(env.get(s.port_variable, s.default_port)))]
    if busy:
        print(f"Cannot start: in use already: {', '.join(busy)}. Stop what holds them, or change the ports in .env.")
        return 1
    workspace.pid_file.parent.mkdir(exist_ok=True)
    if workspace.log_file.exists():  # each make up starts a fresh log; the previous run's is kept once
        workspace.log_file.replace(workspace.log_file.with_name("topology.log.1"))
    with workspace.log_file.open("wb") as log:
        # The settings go in as the environment (process env over .env, as compose does), not as an env
        # file honcho would let win. Names come from SERVICES (our own constant), never from input.
        honcho = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "honcho", "start", "--no-colour", "-f", str(PROCFILE), "-e", os.devnull]
            + [service.name for service in services],
            # The Procfile's `python` is this interpreter, the project's virtualenv.
            env={
                "CALENDAR_AUTH_SERVER_CONFIG": str(CALENDAR_AUTH_SERVER_CONFIG),
                **os.environ,
                **env,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            cwd=workspace.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    workspace.pid_file.write_text(str(honcho.pid))
    save_settings(workspace.settings_file, env, _dotenv(workspace))
    print(f"Starting {len(services)} services as local processes (log: .run/topology.log)…")
    try:
        unhealthy = wait_healthy(env, honcho)
    except KeyboardInterrupt:
        stop(workspace)
        return 130
    if unhealthy:
        if honcho.poll() is None:
            stop(workspace, quiet=True)
        else:
            workspace.pid_file.unlink(missing_ok=True)
        print(failure_report(workspace.log_file.read_text(errors="replace"), unhealthy, ".run/topology.log"))
        return 1
    banner(workspace)
    return 0


def _dotenv(workspace: Workspace) -> dict[str, str]:
    return {k: v for k, v in dotenv_values(workspace.env_file).items() if v is not None}


def stop(workspace: Workspace, *, quiet: bool = False) -> None:
    """Stop honcho's whole process group, if it runs."""
    workspace.settings_file.unlink(missing_ok=True)
    pid = running_pid(workspace)
    if pid is None:
        if not quiet:
            print("Nothing running.")
        workspace.pid_file.unlink(missing_ok=True)
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and running_pid(workspace) is not None:
        time.sleep(0.2)
    if running_pid(workspace) is not None:
        os.killpg(pid, signal.SIGKILL)
    workspace.pid_file.unlink(missing_ok=True)
    if not quiet:
        print("Stopped all services.")


def delete_data(workspace: Workspace) -> list[str]:
    """Delete the data directories, the traces and the logs inside the workspace (never outside it)."""
    env = load_env(workspace)
    root = workspace.directory.resolve()
    deleted = []
    for log in (workspace.log_file, workspace.log_file.with_name("topology.log.1")):
        if log.exists():
            log.unlink()
            deleted.append(str(log.relative_to(workspace.directory)))
    for variable, default in {**DATA_DIRS, "TRACES_DIR": ".run/traces"}.items():
        path = (root / (env.get(variable) or default)).resolve()
        if path != root and path.is_relative_to(root) and path.is_dir():
            shutil.rmtree(path)
            deleted.append(str(path.relative_to(root)))
            if path.parent != root and path.parent.is_relative_to(root) and not any(path.parent.iterdir()):
                path.parent.rmdir()  # data/ itself, once empty
    return deleted


def down(workspace: Workspace) -> int:
    """Stop the services, then delete their data unless KEEP_DATA=1 (.env, with its secrets, stays)."""
    stop(workspace)
    if os.environ.get("KEEP_DATA") == "1":
        print("Kept the data (KEEP_DATA=1): signing keys, databases, traces and logs stay for the next make up.")
        return 0
    deleted = delete_data(workspace)
    if deleted:
        print(f"Deleted the data: {', '.join(deleted)} (make down KEEP_DATA=1 keeps it).")
    return 0


def banner(workspace: Workspace) -> int:
    env = load_env(workspace)
    print("\nAll services are up:\n")
    for service in active_services(env):
        print(f"  {service.name:<20} {base_url(service, env) + service.path:<28} {service.role}")
    local_auth = SERVICES[0] in active_services(env)
    mode = env.get("CRM_API_AUTH_MODE", "cascade")
    other = "cascade" if mode == "exchange" else "exchange"
    print(
        f"\ncrm-mcp → crm-api: CRM_API_AUTH_MODE={mode} ({CRM_API_AUTH_MODES.get(mode, 'unknown')}). "
        f"The other: make down, then make up CRM_API_AUTH_MODE={other}."
    )
    print(
        f"DPoP (docs/dpop.md): resource servers AUTH_DPOP={env.get('AUTH_DPOP', 'accept')}, "
        f"calendar-api CALENDAR_AUTH_DPOP={env.get('CALENDAR_AUTH_DPOP', 'accept')}, crm-mcp's own tokens "
        + ("DPoP-bound" if env.get("CRM_MCP_DPOP", "false").lower() == "true" else "bearer")
        + " (the calendar's too). make up DPOP=require binds every token of the demo."
    )
    print(
        "\nNext:\n"
        + ("  make demo    log in as a demo user and call one tool per pattern (narrated)\n" if local_auth else "")
        + "  make logs    follow the services' logs\n"
        "  make down    stop everything\n"
        f"  Connect an MCP client (MCP Inspector, Claude Code) to {base_url(SERVICES[-1], env)}/mcp;\n"
        + (
            "  log in as alice or bob with the DEMO_*_PASSWORD values in .env."
            if local_auth
            else "  log in with an account of your hosted provider."
        )
    )
    return 0


def main(argv: list[str]) -> int:
    commands = {"init-env": init_env, "up": up, "down": down, "banner": banner}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](Workspace.from_environment())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
