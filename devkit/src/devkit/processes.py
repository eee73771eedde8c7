"""Start the project's real services as subprocesses on free loopback ports, for tests.

Each service runs as `python -m <module>` in its own process group, with a working
directory that holds no `.env` (so only the environment the test gives it applies),
and its output captured to a log file the test can read (e.g. to prove no secret is logged).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

# Variables a developer's shell may carry that must not leak into a service under test.
_SCRUBBED_PREFIXES = (
    "AUTH_",
    "CORS_",
    "CRM_MCP_",
    "CRM_API_",
    "TICKETS_MCP_",
    "WEATHER_API_",
    "DEMO_",
    "CALENDAR_",
    "DATABASE_",
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    """One running service: its URL, its process and its captured log."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    workdir: Path
    # What to run instead of `python -m module` (e.g. a Node.js server in tests/interop).
    command: list[str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def resident_bytes(self) -> int:
        """The running process's resident set size (VmRSS, from /proc: Linux only)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for {self.name} (process {self.process.pid})")

    def start(self, *, health_path: str = "/health", timeout: float = 30.0) -> ServiceProcess:
        """Start the process and wait until `health_path` answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(self.env)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, or a test's fixed command
            self.command or [sys.executable, "-m", self.module],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_healthy(health_path, timeout)
        except BaseException:  # a timeout, and also Ctrl-C or SIGTERM mid-start: the caller never gets it to stop
            self.stop()
            raise
        return self

    def _wait_healthy(self, health_path: str, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx2.get(self.url + health_path, timeout=1.0).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy after {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after a grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def start_service(
    name: str,
    module: str,
    *,
    port_variable: str,
    env: Mapping[str, str],
    workdir: Path,
    port: int | None = None,
    health_path: str = "/health",
    timeout: float = 30.0,
) -> ServiceProcess:
    """Start `python -m module` on a free loopback port (set through `port_variable`) and wait until healthy."""
    configured_port = env.get(port_variable)
    port = port or free_port()
    host_variable = port_variable.removesuffix("_PORT") + "_HOST"
    full_env = {**env, port_variable: str(port), host_variable: "127.0.0.1"}
    # Another instance of a service (a replica, a second crm-mcp in another mode) gets its own /metrics port.
    metrics_variable = port_variable.removesuffix("_PORT") + "_METRICS_PORT"
    if full_env.get(metrics_variable) and str(port) != configured_port:
        full_env[metrics_variable] = str(free_port())
    service = ServiceProcess(name=name, module=module, port=port, env=full_env, workdir=workdir)
    return service.start(health_path=health_path, timeout=timeout)
