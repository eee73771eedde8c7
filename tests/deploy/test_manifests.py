"""`make lint`'s manifest checks (every manifest valid offline, a broken one fails it, the Python renderer
equals `kubectl kustomize`) and the manifests' consistency: the Jobs' and Deployments' settings, the migrate
phase, the secrets helper."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.k8s_manifests import (
    KUBERNETES_VERSION,
    MANIFESTS,
    ROOT,
    ManifestError,
    check,
    containers,
    overlays,
    render,
)
from scripts.k8s_secrets import FROM_ENV


def lint_manifests(root: Path) -> subprocess.CompletedProcess[str]:
    """What `make lint` runs for the manifests, on `root`."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.k8s_manifests", "check", "--root", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_manifest_and_rendered_overlay_is_valid() -> None:
    assert [overlay.name for overlay in overlays(MANIFESTS)] == ["local", "production"]
    assert check() == []


@pytest.fixture
def copy_root(tmp_path: Path) -> Path:
    root = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, root)
    return root


def test_lint_fails_on_a_broken_manifest(copy_root: Path) -> None:
    crm_api = copy_root / "base" / "crm-api.yaml"
    crm_api.write_text(crm_api.read_text().replace("readinessProbe:", "readinesProbe:"), encoding="utf-8")
    hpa = copy_root / "overlays" / "production" / "autoscaling.yaml"
    hpa.write_text(hpa.read_text().replace("minReplicas: 2", "minReplicas: two"), encoding="utf-8")
    completed = lint_manifests(copy_root)
    assert completed.returncode == 1
    assert (
        "base/crm-api.yaml: Deployment/crm-api: spec.template.spec.containers.0: Additional properties"
        in completed.stderr
    )
    assert "'readinesProbe' was unexpected" in completed.stderr
    assert "production (rendered): HorizontalPodAutoscaler/crm-mcp: spec.minReplicas: 'two'" in completed.stderr
    assert f"against Kubernetes {KUBERNETES_VERSION}" in completed.stderr


def test_lint_fails_on_a_kind_without_a_schema_and_on_a_broken_kustomization(copy_root: Path) -> None:
    (copy_root / "base" / "monitor.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: crm-mcp}\nspec: {}\n"
    )
    local = copy_root / "overlays" / "local" / "kustomization.yaml"
    local.write_text(local.read_text().replace("  - redis.yaml\n", "  - redis.yaml\n  - missing.yaml\n"))
    completed = lint_manifests(copy_root)
    assert completed.returncode == 1
    assert "no schema for kind ServiceMonitor (monitoring.coreos.com/v1) in Kubernetes 1.34" in completed.stderr
    assert "overlays/local/kustomization.yaml: resource 'missing.yaml' does not exist" in completed.stderr


def test_the_renderer_refuses_kustomize_fields_it_does_not_implement(copy_root: Path) -> None:
    local = copy_root / "overlays" / "local" / "kustomization.yaml"
    local.write_text(local.read_text() + "commonLabels: {team: sales}\n")
    with pytest.raises(ManifestError, match=r"does not implement: \['commonLabels'\]"):
        render(local.parent)


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_the_renderer_matches_kubectl_kustomize(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the real kustomize cannot be compared (install kubectl to compare)")
    directory = MANIFESTS / "overlays" / overlay
    real = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=True
    )

    def keyed(objects: list[dict[str, object]]) -> dict[tuple[str, str], object]:
        return {(str(o["kind"]), str(o["metadata"]["name"])): o for o in objects}  # type: ignore[index]

    assert keyed(render(directory)) == keyed([o for o in yaml.safe_load_all(real.stdout) if o])


def test_the_calendar_auth_server_config_is_the_services_file() -> None:
    (config_map, *_) = yaml.safe_load_all(
        (MANIFESTS.parent.parent / "deploy/kubernetes/stand-ins/calendar-auth-server.yaml").read_text()
    )
    assert config_map["data"]["auth-server.toml"] == (ROOT / "services/calendar-api/auth-server.toml").read_text()


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_each_migration_container_has_its_services_settings(overlay: str) -> None:
    """`python -m <pkg> migrate` loads the service's whole settings: the Job's env must be its Deployment's."""
    objects = render(MANIFESTS / "overlays" / overlay)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    jobs = [o for o in objects if o["kind"] == "Job"]
    migrated = set()
    for job in jobs:
        for container in job["spec"]["template"]["spec"]["containers"]:
            service = deployments[container["name"]]["spec"]["template"]["spec"]["containers"][0]
            assert container["env"] == service["env"], container["name"]
            assert container["image"] == service["image"]
            assert container["imagePullPolicy"] == service["imagePullPolicy"] == "IfNotPresent"
            assert container["command"][-1] == "migrate"
            migrated.add(container["name"])
    assert migrated == {"auth-server", "calendar-auth-server", "crm-mcp", "crm-api", "tickets-mcp"}


# Settings the Kubernetes Deployments add to what docker-compose.yml's default services read (issue 18's
# shared state; PYTHONDONTWRITEBYTECODE keeps Python from writing next to its read-only code).
SHARED_STATE_SETTINGS = {
    "DATABASE_URL",
    "DATABASE_MIGRATE_ON_START",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "AUTH_SERVER_STATE_KEYS",
    "PYTHONDONTWRITEBYTECODE",
}


def test_each_deployment_reads_the_settings_compose_gives_that_service() -> None:
    """No misspelt variable, none missing: compared with the compose file, the configuration proven by `make up`."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for overlay in ("local", "production"):
        for deployment in (o for o in render(MANIFESTS / "overlays" / overlay) if o["kind"] == "Deployment"):
            name = deployment["metadata"]["name"]
            names = {variable["name"] for variable in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
            service = compose[name]["environment"]
            unknown = names - set(service) - SHARED_STATE_SETTINGS
            assert unknown == set(), f"{overlay} {name}: not read by the service in compose: {sorted(unknown)}"
            required = {key for key, value in service.items() if isinstance(value, str) and ":?" in value}
            assert required - names == set(), f"{overlay} {name}: compose requires {sorted(required - names)}"


def test_the_local_secrets_helper_fills_every_secret_key_the_local_overlay_references(tmp_path: Path) -> None:
    referenced = {
        (variable["valueFrom"]["secretKeyRef"]["name"], variable["valueFrom"]["secretKeyRef"]["key"])
        for container in containers(render(MANIFESTS / "overlays" / "local"))
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
        and not variable["valueFrom"]["secretKeyRef"].get(
            "optional"
        )  # CRM_MCP_CLIENT_SECRET: only with a secret method
    }
    env_file = tmp_path / ".env"
    values = {variable: f"value-of-{variable}" for keys in FROM_ENV.values() for variable in keys.values()}
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.k8s_secrets", "--env-file", str(env_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    listed = json.loads(completed.stdout)
    provided = {(item["metadata"]["name"], key) for item in listed["items"] for key in item["stringData"]}
    assert referenced <= provided, sorted(referenced - provided)
    by_name = {item["metadata"]["name"]: item["stringData"] for item in listed["items"]}
    password = by_name["postgres-secrets"]["POSTGRES_PASSWORD"]
    assert len(password) == 48
    assert by_name["crm-api-secrets"]["DATABASE_URL"] == f"postgresql://postgres:{password}@postgres:5432/crm_api"
    assert by_name["crm-mcp-secrets"]["CRM_MCP_VAULT_KEYS"] == "value-of-CRM_MCP_VAULT_KEYS"
    assert all(item["metadata"]["namespace"] == "mcp" for item in listed["items"])


def test_the_local_secrets_helper_refuses_an_env_with_a_placeholder(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("AUTH_SERVER_STATE_KEYS=<generated>\n")
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.k8s_secrets", "--env-file", str(env_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "AUTH_SERVER_STATE_KEYS is not set in .env (run make up once to generate it)" in completed.stderr


PHASE = "mcp-downstream-auth/phase"


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_the_migrate_phase_holds_everything_the_migration_jobs_need(overlay: str) -> None:
    """`kubectl apply -k <overlay> -l mcp-downstream-auth/phase=migrate` runs before the Deployments
    (docs/kubernetes.md#deploy): what the Jobs read, and what lets them reach the database, is in it."""
    objects = render(MANIFESTS / "overlays" / overlay)
    phase = [o for o in objects if o["metadata"].get("labels", {}).get(PHASE) == "migrate"]
    names = {(o["kind"], o["metadata"]["name"]) for o in phase}
    jobs = [o for o in phase if o["kind"] == "Job"]
    assert {job["metadata"]["name"] for job in jobs} == {
        "migrate",
        "auth-server-migrate",
        "calendar-auth-server-migrate",
    }
    assert ("Namespace", "mcp") in names
    for job in jobs:
        spec = job["spec"]["template"]["spec"]
        config_maps = {v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
        for container in spec["containers"]:
            for variable in container["env"]:
                reference = variable.get("valueFrom", {}).get("configMapKeyRef")
                if reference:
                    config_maps.add(reference["name"])
        assert {("ConfigMap", name) for name in config_maps} <= names, job["metadata"]["name"]
    # Default deny is applied in this phase, so the Jobs' DNS and database egress must be too.
    assert {("NetworkPolicy", "default-deny"), ("NetworkPolicy", "dns"), ("NetworkPolicy", "database-egress")} <= names
    if overlay == "local":
        assert {("StatefulSet", "postgres"), ("Service", "postgres"), ("NetworkPolicy", "postgres")} <= names
        assert ("ConfigMap", "postgres-init") in names
    assert not [o for o in phase if o["kind"] == "Deployment"]
