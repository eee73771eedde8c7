"""The scaled topology's plan and HAProxy configuration (devkit.scaled_layout) and its Procfile
(scripts.scaled_topology) (no process started; tests/scaleout runs them)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from devkit.scaled_layout import (
    DATABASES,
    haproxy_config,
    plan,
    replica_counts,
    resolve,
)

from scripts.scaled_topology import procfile

ENV = {"CRM_MCP_PORT": "8001", "CRM_MCP_METRICS_PORT": "9401", "AUTH_SERVER_PORT": "9000"}


def test_replica_counts_are_n_crm_mcp_and_two_of_everything_else() -> None:
    counts = replica_counts(3)
    assert counts["crm-mcp"] == 3
    assert counts["calendar-api"] == 1  # the SaaS stand-in keeps its meetings in memory
    assert {count for name, count in counts.items() if name not in ("crm-mcp", "calendar-api")} == {2}
    assert set(replica_counts(1).values()) == {1}
    with pytest.raises(ValueError, match="REPLICAS"):
        replica_counts(0)


def test_replicas_listen_below_the_ephemeral_range_10000_above_the_public_port() -> None:
    layout = plan(ENV, replica_counts(3))
    assert layout.public_ports["crm-mcp"] == 8001
    assert [(r.name, r.port, r.metrics_port) for r in layout.replicas["crm-mcp"]] == [
        ("crm-mcp-1", 18001, 19401),
        ("crm-mcp-2", 18101, 19501),
        ("crm-mcp-3", 18201, 19601),
    ]


def test_each_replica_gets_its_own_port_its_services_database_and_redis_prefix() -> None:
    layout = plan(ENV, replica_counts(3))
    calendar = layout.replica("calendar-auth-server-2")
    env = {"SCALED_DATABASE_URL_CALENDAR_AUTH_SERVER": "postgresql://calendar", "CALENDAR_AUTH_ISSUER": "http://cal"}
    settings = resolve(calendar.settings(), env)
    assert settings["AUTH_SERVER_PORT"] == str(calendar.port)  # auth_server, under the calendar's settings
    assert settings["AUTH_ISSUER"] == "http://cal"
    assert settings["DATABASE_URL"] == "postgresql://calendar"
    assert settings["REDIS_KEY_PREFIX"] == "calendar-auth-server"
    assert settings["AUTH_SERVER_DPOP"] == "accept"  # the calendar's own DPoP setting, by default accept
    assert (
        resolve(calendar.settings(), {**env, "CALENDAR_AUTH_SERVER_DPOP": "require"})["AUTH_SERVER_DPOP"] == "require"
    )
    assert "DATABASE_URL" not in layout.replica("weather-api-1").settings()  # no durable state
    assert set(DATABASES) == {"auth-server", "calendar-auth-server", "crm-mcp", "crm-api", "tickets-mcp"}


def test_the_procfile_starts_later_replicas_after_the_first_and_holds_no_secret() -> None:
    text = procfile(plan(ENV, replica_counts(3)))
    lines = {line.split(":", 1)[0]: line for line in text.splitlines() if not line.startswith("#")}
    assert len(lines) == 3 + 2 * 5 + 1
    assert "wait-healthy" not in lines["crm-mcp-1"]
    assert "wait-healthy 18001 &&" in lines["crm-mcp-3"]
    assert 'DATABASE_URL="$SCALED_DATABASE_URL_CRM_MCP"' in lines["crm-mcp-2"]  # a reference, not the URL
    assert "postgresql://" not in text


def test_haproxy_round_robins_without_stickiness_and_checks_readiness(tmp_path: Path) -> None:
    config = haproxy_config(plan(ENV, replica_counts(3)))
    assert config.count("balance roundrobin") == 7
    assert "cookie" not in config
    assert "stick" not in config
    assert "bind 127.0.0.1:8001" in config
    assert "server crm-mcp-3 127.0.0.1:18201 check" in config
    assert "uri /health/ready" in config
    assert "fall 2" in config
    assert "X-Served-By %[srv_name]" in config
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if haproxy is None:
        pytest.skip("haproxy is not installed: the configuration is checked where it is (CI, tests/scaleout)")
    (tmp_path / "haproxy.cfg").write_text(config)
    checked = subprocess.run([haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
