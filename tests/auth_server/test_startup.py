"""Start-up failures are one clear line naming the missing setting, never showing a secret."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from devkit.processes import free_port, start_service

from tests.auth_server.conftest import AuthTestEnv

_SCRUBBED = ("AUTH_", "CRM_", "TICKETS_", "DEMO_", "TEST_", "DATABASE_")


def _start(env: dict[str, str], workdir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if not name.startswith(_SCRUBBED)}
    return subprocess.run(
        [sys.executable, "-m", "auth_server", *arguments],
        cwd=workdir,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "missing",
    [
        "AUTH_ISSUER",
        "AUTH_SERVER_STATE_KEYS",
        "CRM_MCP_RESOURCE",
        "CRM_MCP_CLIENT_SECRET",
        "CRM_MCP_JWKS_URI",
        "DEMO_ALICE_PASSWORD",
    ],
)
def test_a_missing_variable_stops_start_up_naming_it(tmp_path: Path, missing: str) -> None:
    env = AuthTestEnv(port=free_port(), workdir=tmp_path)
    variables = {**env.environment(), "AUTH_SERVER_PORT": str(env.port)}
    del variables["AUTH_SERVER_CONFIG"]  # the packaged default config
    del variables[missing]

    result = _start(variables, tmp_path)

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("auth-server: ")
    assert missing in last_line
    for secret in env.secrets():
        assert secret not in result.stderr


def _variables(env: AuthTestEnv) -> dict[str, str]:
    variables = {**env.environment(), "AUTH_SERVER_PORT": str(env.port)}
    del variables["AUTH_SERVER_CONFIG"]  # the packaged default config
    return variables


def test_a_short_state_key_stops_start_up_naming_the_setting_not_the_key(tmp_path: Path) -> None:
    env = AuthTestEnv(port=free_port(), workdir=tmp_path)
    short = "short-but-secret"
    result = _start({**_variables(env), "AUTH_SERVER_STATE_KEYS": f"{env.state_key},{short}"}, tmp_path)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("auth-server: ")
    assert "AUTH_SERVER_STATE_KEYS" in last_line
    assert short not in result.stderr
    assert env.state_key not in result.stderr


def test_migrate_creates_the_default_sqlite_database_and_exits(tmp_path: Path) -> None:
    env = AuthTestEnv(port=free_port(), workdir=tmp_path)
    result = _start(_variables(env), tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert "database migrated" in result.stdout
    database = tmp_path / "data" / "auth-server.db"
    assert database.stat().st_mode & 0o777 == 0o600  # never readable by other local users
    tables = sqlite3.connect(database).execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert {"registered_clients", "pending_sign_ins", "authorization_codes", "refresh_tokens"} <= {
        name for (name,) in tables
    }


@pytest.mark.parametrize("command", [(), ("migrate",)])
def test_an_unreachable_database_stops_start_up_and_migrate_naming_the_setting(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = AuthTestEnv(port=free_port(), workdir=tmp_path)
    password = "pw-that-must-not-show"
    url = f"postgresql://auth:{password}@127.0.0.1:{free_port()}/auth"  # nothing listens there
    result = _start({**_variables(env), "DATABASE_URL": url}, tmp_path, *command)
    assert result.returncode != 0
    expected = {  # migrate: the words of every service's `python -m <package> migrate` (oauth_tokens.service_database)
        (): "DATABASE_URL: the database cannot be reached",
        ("migrate",): "auth-server: the database (DATABASE_URL) cannot be reached; nothing was migrated",
    }
    assert expected[command] in result.stderr
    assert password not in result.stderr + result.stdout


def test_without_migration_on_start_a_replica_is_unready_until_migrate_has_run(tmp_path: Path) -> None:
    env = AuthTestEnv(port=free_port(), workdir=tmp_path)
    variables = {**_variables(env), "DATABASE_MIGRATE_ON_START": "false"}
    server = start_service(
        "auth-server", "auth_server", port_variable="AUTH_SERVER_PORT", env=variables, workdir=tmp_path
    )
    try:
        unready = httpx2.get(f"{server.url}/health/ready", timeout=10.0)
        assert (unready.status_code, unready.json()["unavailable"]) == (503, ["database"])
        assert "Retry-After" in unready.headers
        assert _start(variables, tmp_path, "migrate").returncode == 0
        assert httpx2.get(f"{server.url}/health/ready", timeout=10.0).status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("damaged", ["keys.json", "pem"])
def test_a_damaged_key_file_names_the_file_and_the_fix(tmp_path: Path, damaged: str) -> None:
    env = AuthTestEnv(port=free_port(), workdir=tmp_path)
    variables = _variables(env)
    keys_dir = tmp_path / "data" / "keys"
    keys_dir.mkdir(parents=True)
    if damaged == "keys.json":
        broken = keys_dir / "keys.json"
        broken.write_text("{not json")
    else:
        broken = keys_dir / "k1.pem"
        # PEM armour around a body that is no key; assembled here so no key-shaped header sits in git.
        label = "PRIVATE " + "KEY"
        broken.write_text(f"-----BEGIN {label}-----\nnot a key\n-----END {label}-----\n")
        (keys_dir / "keys.json").write_text('{"keys": [{"kid": "k1", "created_at": 1}]}')

    result = _start(variables, tmp_path)

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"auth-server: The signing key file {broken} is damaged")
    assert "ValueError at" not in last_line
    assert f"delete the directory {keys_dir}" in last_line
    assert "make down" in last_line
