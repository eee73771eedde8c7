"""PostgreSQL, Redis and HAProxy from Debian's packages, run as local processes on the ports you give.

`make up REPLICAS=N` (scripts.topology) and the scale-out tests (tests/support/servers.py) both start
their servers here, so there is one way to find, install and run each one:

- A missing program is installed with apt-get only when `install=True` and we are root (CI); otherwise
  `MissingServer` says which command installs it. Nothing is ever downloaded from outside Debian.
- PostgreSQL refuses to run as root: as root, initdb and postgres run as the `postgres` user
  (`runuser -u postgres`), and the data directory is handed to that user.
- Every server listens on 127.0.0.1 only and asks for a password (PostgreSQL scram-sha-256, Redis
  `requirepass`); the URL carrying it is for the caller's environment, never for logs.
- `LocalServer.stop()` / `.start()` stop and restart the same server on the same port and data, which
  is how the tests take PostgreSQL or Redis away for a while.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_SECONDS = 30.0


class MissingServer(RuntimeError):
    """A server program is not installed and could not be installed here; `command` installs it."""

    def __init__(self, program: str, package: str) -> None:
        self.command = f"sudo apt-get update && sudo apt-get install -y {package}"
        super().__init__(f"`{program}` is not installed (Debian package {package}). Run: {self.command}")


def _apt_get(*arguments: str) -> None:
    completed = subprocess.run(  # noqa: S603 - fixed program, arguments from this module
        ["apt-get", *arguments],  # noqa: S607 - apt-get from PATH, as Debian installs it
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"apt-get {' '.join(arguments)} failed:\n{completed.stderr[-3000:]}")


def _is_root() -> bool:
    return os.geteuid() == 0


def find_program(program: str, package: str, *, patterns: Sequence[str] = (), install: bool = False) -> Path:
    """The path of `program` (PATH, then `patterns`); apt-get installs `package` first if allowed and root."""
    for attempt in range(2):
        found = shutil.which(program)
        if found:
            return Path(found)
        for pattern in patterns:
            matches = sorted(glob.glob(pattern), reverse=True)  # the newest PostgreSQL major first
            if matches:
                return Path(matches[0])
        if attempt == 0 and install and _is_root() and shutil.which("apt-get"):
            _apt_get("update")
            _apt_get("install", "-y", package)
            continue
        break
    raise MissingServer(program, package)


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until 127.0.0.1:`port` accepts a connection; fails with the server's log if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s:\n{log.read_text(errors='replace')}")


@dataclass
class LocalServer:
    """One server process; `url` includes its password (keep it out of logs)."""

    name: str
    port: int
    url: str
    command: list[str]
    log_path: Path
    user: str | None = None  # run as this OS user (PostgreSQL as root)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> LocalServer:
        command = ["runuser", "-u", self.user, "--", *self.command] if self.user else self.command
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - a command this module built
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_port(self.port, self.process, self.log_path, timeout)
        except BaseException:  # a timeout, Ctrl-C or SIGTERM mid-start: the caller never gets it to stop
            self.stop()
            raise
        return self

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the process group (SIGTERM: PostgreSQL's smart shutdown, Redis's save-less exit)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _hand_to(user: str, path: Path) -> None:
    """chown -R `path` to `user` (PostgreSQL's data directory must be its own)."""
    subprocess.run(["chown", "-R", f"{user}:{user}", str(path)], check=True)  # noqa: S603, S607


def start_postgres(data_dir: Path, port: int, *, install: bool = False, durable: bool = True) -> LocalServer:
    """initdb (first time) and start PostgreSQL on 127.0.0.1:`port`; the URL names database `mcp`.

    `durable=False` turns off fsync, for throwaway test clusters only.
    """
    bin_dir = find_program(
        "initdb", "postgresql", patterns=["/usr/lib/postgresql/*/bin/initdb"], install=install
    ).parent
    user = "postgres" if _is_root() else None
    data_dir.mkdir(parents=True, exist_ok=True)
    password_file = data_dir / "password"
    cluster = data_dir / "cluster"
    log_path = data_dir / "postgres.log"
    if not (cluster / "PG_VERSION").exists():
        password = secrets.token_urlsafe(24)
        password_file.write_text(password)
        password_file.chmod(0o600)
        pwfile = data_dir / "pwfile"
        pwfile.write_text(password + "\n")
        if user:
            _hand_to(user, data_dir)
        initdb = [str(bin_dir / "initdb"), "-D", str(cluster), "-U", "mcp", "--pwfile", str(pwfile)]
        initdb += ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"]
        subprocess.run(  # noqa: S603 - a command this module built
            ["runuser", "-u", user, "--", *initdb] if user else initdb, check=True, capture_output=True
        )
        pwfile.unlink()
    password = password_file.read_text().strip()
    if user:
        _hand_to(user, data_dir)
    command = [str(bin_dir / "postgres"), "-D", str(cluster), "-p", str(port)]
    command += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=300"]
    if not durable:
        command += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    server = LocalServer(
        "postgresql", port, f"postgresql://mcp:{password}@127.0.0.1:{port}/postgres", command, log_path, user=user
    )
    return server.start()


def start_redis(data_dir: Path, port: int, *, install: bool = False) -> LocalServer:
    """Redis on 127.0.0.1:`port`, password-protected, nothing saved to disk (its state is short-lived)."""
    program = find_program("redis-server", "redis-server", install=install)
    data_dir.mkdir(parents=True, exist_ok=True)
    password_file = data_dir / "password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    config = data_dir / "redis.conf"  # the password in a 0600 file, not on the command line (ps shows that)
    config.write_text(
        f'port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave ""\nappendonly no\n'
        f"dir {data_dir}\nprotected-mode yes\n"
    )
    config.chmod(0o600)
    server = LocalServer(
        "redis", port, f"redis://:{password}@127.0.0.1:{port}/0", [str(program), str(config)], data_dir / "redis.log"
    )
    return server.start()


def start_haproxy(config: Path, port: int, *, install: bool = False) -> LocalServer:
    """HAProxy in the foreground (-db) with `config`; `port` is the frontend to wait for."""
    program = find_program("haproxy", "haproxy", patterns=["/usr/sbin/haproxy"], install=install)
    command = [str(program), "-db", "-f", str(config)]
    return LocalServer("haproxy", port, f"http://127.0.0.1:{port}", command, config.parent / "haproxy.log").start()
