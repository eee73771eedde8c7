"""`make up` / `make down` as local processes (scripts/topology.py), in a scratch directory on free ports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx2
from devkit.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
PORT_VARIABLES = ("AUTH_SERVER_PORT", "CRM_MCP_PORT", "TICKETS_MCP_PORT", "CRM_API_PORT", "WEATHER_API_PORT")
DEFAULT_PORTS = {"AUTH_SERVER_PORT": 9000, "CRM_MCP_PORT": 8001, "TICKETS_MCP_PORT": 8002, "CRM_API_PORT": 8003}
DEFAULT_PORTS["WEATHER_API_PORT"] = 8004
PORT_VARIABLES += ("CALENDAR_AUTH_SERVER_PORT", "CALENDAR_API_PORT")
DEFAULT_PORTS |= {"CALENDAR_AUTH_SERVER_PORT": 9001, "CALENDAR_API_PORT": 8005}
# The /metrics listeners: moved too, so this test never collides with a real `make up`.
METRICS_PORTS = {"AUTH_SERVER_METRICS_PORT": 9400, "CRM_MCP_METRICS_PORT": 9401, "TICKETS_MCP_METRICS_PORT": 9402}
METRICS_PORTS |= {"CRM_API_METRICS_PORT": 9403, "WEATHER_API_METRICS_PORT": 9404}
METRICS_PORTS |= {"CALENDAR_AUTH_SERVER_METRICS_PORT": 9405, "CALENDAR_API_METRICS_PORT": 9406}


def topology(command: str, directory: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run `scripts.topology command` with `variables` in its environment, as `make up NAME=value` puts them."""
    scrubbed = {
        k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "CRM_", "TICKETS_", "WEATHER_", "CALENDAR_"))
    }
    scrubbed.pop("KEEP_DATA", None)
    return subprocess.run(
        [sys.executable, "-m", "scripts.topology", command],
        cwd=ROOT,
        env={**scrubbed, "TOPOLOGY_DIR": str(directory), **variables},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port_env(directory: Path) -> dict[str, int]:
    """Write the .env `make up` would, with every localhost port moved to a free one."""
    assert topology("init-env", directory).returncode == 0
    ports = {variable: free_port() for variable in PORT_VARIABLES}
    moved = {str(DEFAULT_PORTS[variable]): str(port) for variable, port in ports.items()}
    env_file = directory / ".env"
    text = env_file.read_text()
    text = re.sub(r"(?<=localhost:)(\d+)", lambda m: moved.get(m.group(1), m.group(1)), text)
    for variable, port in {**ports, **{variable: free_port() for variable in METRICS_PORTS}}.items():
        text = re.sub(rf"^{variable}=.*$", f"{variable}={port}", text, flags=re.MULTILINE)
    env_file.write_text(text)
    return ports


def test_up_starts_every_service_healthy_and_down_leaves_nothing_but_kept_data(tmp_path: Path) -> None:
    ports = free_port_env(tmp_path)
    assert oct((tmp_path / ".env").stat().st_mode & 0o777) == "0o600"
    assert "CRM_API_AUTH_MODE=cascade" in (tmp_path / ".env").read_text()
    try:
        # As `make up CRM_API_AUTH_MODE=exchange`: the variable beats .env, for every service it concerns.
        started = topology("up", tmp_path, CRM_API_AUTH_MODE="exchange")
        assert started.returncode == 0, started.stdout + started.stderr
        assert "All services are up" in started.stdout
        assert "CRM_API_AUTH_MODE=exchange (pattern 3b" in started.stdout
        log = (tmp_path / ".run" / "topology.log").read_text()
        assert f"Tokens for resource crm-mcp carry aud http://localhost:{ports['CRM_MCP_PORT']}/mcp\n" in log
        assert "crm-api calls: CRM_API_AUTH_MODE=exchange" in log
        for port in ports.values():
            assert httpx2.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        again = topology("up", tmp_path)  # nothing new asked for: fine
        assert "Already running" in again.stdout
        assert again.returncode == 0
        # Asked for another mode while it runs: say so and how to get it, never a banner claiming it.
        other = topology("up", tmp_path, CRM_API_AUTH_MODE="cascade")
        assert other.returncode == 1
        lines = other.stdout.splitlines()
        assert "with other settings than you asked for" in lines[0]
        assert lines[1].strip() == "CRM_API_AUTH_MODE: running with exchange, asked for cascade"
        assert lines[2] == "Fix: make down, then make up CRM_API_AUTH_MODE=cascade"
        assert "All services are up" not in other.stdout
    finally:
        stopped = topology("down", tmp_path, KEEP_DATA="1")
    assert stopped.returncode == 0
    assert "Stopped all services" in stopped.stdout
    data = tmp_path / "data"
    kept = {"auth-server", "crm-api", "tickets-mcp", "crm-mcp", "calendar-auth-server"}
    assert {path.name for path in data.iterdir()} == kept
    assert (tmp_path / ".run" / "topology.log").exists()  # KEEP_DATA=1 keeps the log and traces too
    (tmp_path / ".run" / "traces").mkdir(exist_ok=True)
    for port in ports.values():
        try:
            httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx2.TransportError:
            continue
        raise AssertionError(f"port {port} still answers after down")
    # Without KEEP_DATA, down deletes the data (signing keys, databases) even with nothing running; .env stays.
    stopped_again = topology("down", tmp_path)
    assert "Nothing running" in stopped_again.stdout
    assert "Deleted the data" in stopped_again.stdout
    assert not data.exists()
    assert not (tmp_path / ".run" / "traces").exists()  # no earlier topology's trace for make trace to draw
    assert not (tmp_path / ".run" / "topology.log").exists()
    assert (tmp_path / ".env").exists()


def test_up_refuses_a_busy_port_by_name(tmp_path: Path) -> None:
    import socket

    ports = free_port_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["CRM_API_PORT"]))
        holder.listen()
        started = topology("up", tmp_path)
    assert started.returncode == 1
    assert f"crm-api port {ports['CRM_API_PORT']}" in started.stdout


def test_the_generated_env_file_can_be_sourced_by_bash(tmp_path: Path) -> None:
    """The docs load .env into a shell (`set -a; . ./.env; set +a`): every value must survive that as written."""
    assert topology("init-env", tmp_path).returncode == 0
    sourced = subprocess.run(
        ["bash", "-c", 'set -a; . ./.env; set +a; echo "$CALENDAR_SCOPES"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert sourced.returncode == 0
    assert sourced.stderr == ""
    assert sourced.stdout.strip() == "calendar:read calendar:write"


def test_a_bad_setting_names_only_the_service_that_failed_and_the_fix_first(tmp_path: Path) -> None:
    free_port_env(tmp_path)
    (tmp_path / ".run").mkdir()
    (tmp_path / ".run" / "topology.log").write_text("12:00:00 system | a previous run's line\n")

    started = topology("up", tmp_path, CRM_API_AUTH_MODE="bogus")

    assert started.returncode == 1
    # After "Starting…" and a tick per service that became healthy before the others were stopped:
    lines = [line for line in started.stdout.splitlines()[1:] if not line.startswith("  ✓ ")]
    failed, _, cause = lines[0].partition(" failed to start: ")
    assert cause == "Invalid setting CRM_API_AUTH_MODE: must be one of cascade, exchange", started.stdout
    assert set(failed.split(", ")) <= {"auth-server", "crm-mcp", "crm-api", "calendar-auth-server"}
    assert "weather-api" not in failed
    assert "tickets-mcp" not in failed
    assert lines[1] == (
        "Fix: correct CRM_API_AUTH_MODE in .env (or give it on the command line: make up CRM_API_AUTH_MODE=...), "
        "then make up."
    )
    assert "Not healthy" not in started.stdout
    assert "Nothing running" not in started.stdout
    log = (tmp_path / ".run" / "topology.log").read_text()
    assert "a previous run's line" not in log  # a fresh log per make up; the previous one is kept once
    assert "a previous run's line" in (tmp_path / ".run" / "topology.log.1").read_text()
    assert topology("down", tmp_path).returncode == 0
    assert not (tmp_path / ".run" / "topology.log.1").exists()
