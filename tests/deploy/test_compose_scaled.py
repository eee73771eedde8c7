"""docker-compose.yml's `scaled` profile: it passes the compose schema, leaves the default services alone,
spreads every hop over the replicas through HAProxy (whose config parses), and names exactly the databases
its PostgreSQL creates. No Docker engine here: what can be checked without starting it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from scripts.k8s_manifests import MANIFESTS, ROOT, render
from scripts.k8s_secrets import DATABASES


def test_the_compose_scaled_profile_passes_the_schema_and_leaves_the_default_alone() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    scaled = {name: s for name, s in services.items() if "scaled" in s.get("profiles", [])}
    default = {name for name, s in services.items() if "scaled" not in s.get("profiles", [])}
    assert default == {
        "auth-server",
        "weather-api",
        "crm-api",
        "tickets-mcp",
        "crm-mcp",
        "calendar-auth-server",
        "calendar-api",
    }
    assert {scaled[name]["image"] for name in ("postgres", "redis", "scaled-lb")} == {
        "postgres:17.6",
        "redis:7.4",
        "haproxy:3.2",
    }
    assert scaled["scaled-crm-mcp"]["deploy"]["replicas"] == 3
    assert all(scaled[f"scaled-{name}"]["deploy"]["replicas"] == 2 for name in default - {"crm-mcp"})
    assert all(
        not s.get("ports") for name, s in scaled.items() if name != "scaled-lb"
    )  # only the balancer is published
    assert all(
        s["environment"]["DATABASE_URL"].startswith("postgresql://")
        for n, s in scaled.items()
        if n
        in {
            "scaled-auth-server",
            "scaled-crm-mcp",
            "scaled-crm-api",
            "scaled-tickets-mcp",
            "scaled-calendar-auth-server",
        }
    )


def test_the_scaled_profiles_haproxy_config_parses() -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy): its config check cannot run")
    config = ROOT / "deploy" / "compose" / "haproxy.cfg"
    completed = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    text = config.read_text()
    for service, replicas in {"crm-mcp": 3, "auth-server": 2, "tickets-mcp": 2, "crm-api": 2}.items():
        assert f"server-template {service} 1-{replicas + 2} scaled-{service}:" in text
    directives = [line.split()[0] for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert not {"cookie", "stick", "stick-table", "hash-type"} & set(directives)  # round robin, no stickiness


def test_the_scaled_services_call_one_another_only_through_the_balancer() -> None:
    """No scaled replica calls a default singleton by its compose name, and every port it calls the balancer on
    is one haproxy.cfg binds: each hop is spread over the replicas."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    binds = set(re.findall(r"^\s+bind :(\d+)$", (ROOT / "deploy/compose/haproxy.cfg").read_text(), flags=re.M))
    through_balancer = set()
    for name, service in services.items():
        if "scaled" not in service.get("profiles", []):
            continue
        for key, value in service.get("environment", {}).items():
            for host, port in re.findall(r"https?://([\w.-]+)(?::(\d+))?", str(value)):
                assert host in {"scaled-lb", "localhost", "127.0.0.1"}, f"{name} {key} calls {host}"
                if host == "scaled-lb":
                    assert port in binds, f"{name} {key}: no HAProxy frontend on {port}"
                    through_balancer.add(port)
    assert through_balancer == {"9000", "8001", "8002", "8003", "8004", "9001", "8005"}
    published = {mapping.split(":")[-1] for mapping in services["scaled-lb"]["ports"]}
    assert published == binds


def test_every_database_a_url_names_is_created_by_the_init_scripts() -> None:
    """One database per service: compose's scaled DATABASE_URLs and the local overlay's (scripts.k8s_secrets)
    name exactly the databases the two PostgreSQL init scripts create."""
    compose_sql = (ROOT / "deploy/compose/postgres-init.sql").read_text()
    (local_init,) = [o for o in render(MANIFESTS / "overlays" / "local") if o["metadata"]["name"] == "postgres-init"]
    created = set(re.findall(r"CREATE DATABASE (\w+);", compose_sql))
    assert created == set(re.findall(r"CREATE DATABASE (\w+);", local_init["data"]["databases.sql"]))
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    compose_databases = {
        s["environment"]["DATABASE_URL"].rsplit("/", 1)[1]
        for s in services.values()
        if "scaled" in s.get("profiles", []) and "DATABASE_URL" in s.get("environment", {})
    }
    assert compose_databases == created == set(DATABASES.values())
    assert len(created) == 5
